#include "protocol/xml_libxml2.hpp"

#ifndef SBUS_XML_LINKED
#include "base/module_file.hpp"
#endif

namespace sbus {

#ifdef SBUS_XML_LINKED

// The fuzz targets link the module's code itself.
XmlParse libxml2_parse(std::string_view body, Capture* capture, std::string*) {
  static const bool ready = [] {
    libxml2::init();
    return true;
  }();
  (void)ready;
  return libxml2::parse(body, capture);
}

std::string libxml2_load_error() {
  return {};
}

#else

namespace {

constexpr const char* kModuleName = "sbus-xml.so";

struct LoadedModule {
  XmlParseFunction parse = nullptr;
  std::string error;
};

// Once per process, on the first body that needs it; kept until the
// process exits, as the parser contexts of its threads are.
const LoadedModule& loaded_module() {
  static const LoadedModule module = [] {
    LoadedModule loaded;
    const std::vector<std::string> candidates =
        module_candidates("SBUS_XML_MODULE", kModuleName, SBUS_XML_MODULE_INSTALLED);
    auto entry = reinterpret_cast<XmlEntryFunction>(
        load_module_entry(candidates, "XML", kModuleName, kXmlEntrySymbol, &loaded.error));
    if (entry != nullptr) {
      loaded.parse = entry(SBUS_VERSION);
      if (loaded.parse == nullptr) {
        loaded.error = std::string("the XML module ") + kModuleName + " is not of sbus " + SBUS_VERSION;
      }
    }
    return loaded;
  }();
  return module;
}

}  // namespace

XmlParse libxml2_parse(std::string_view body, Capture* capture, std::string* why) {
  const LoadedModule& module = loaded_module();
  if (module.parse == nullptr) {
    *why = module.error;
    return XmlParse::kUnavailable;
  }
  return module.parse(body, capture);
}

std::string libxml2_load_error() {
  return loaded_module().error;
}

#endif

}  // namespace sbus
