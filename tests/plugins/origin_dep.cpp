// A library that origin_plugin.so finds only through $ORIGIN in its RUNPATH
// (both in build/test-plugins/origin/): sbusd's private copy of that plugin
// cannot find it, so the plugin is loaded from its file instead.
extern "C" __attribute__((visibility("default"))) const char* sbus_test_origin_answer() {
  return "found through $ORIGIN";
}
