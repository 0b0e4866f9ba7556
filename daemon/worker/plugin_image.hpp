// A private copy of a plugin file, loaded from memory.
//
// A worker never maps the plugin file itself: load_plugin_image() copies it
// into a sealed memfd and loads that copy with Boost.DLL (through
// /proc/self/fd/N). Writing over the file afterwards (`cp new.so math.so`,
// which Linux lets through for a mapped file) then changes nothing in the
// running worker, where it would change the code under its feet and crash
// it. The new content is read by the next worker that loads the file (a
// reload replaces the workers whose plugin files changed).
//
// What this costs: the copy's pages are the worker's own (the size of the
// file, once per worker), and `$ORIGIN` in the plugin's RUNPATH names
// /proc/self/fd rather than the plugin's folder: the copy finds its
// dependencies by an absolute RUNPATH (sbus_add_plugin sets one beside
// $ORIGIN), the system's folders or as already loaded. A plugin whose
// dependency is found no other way is loaded from its file, as before
// (*from_file says why): for it only write-new-then-rename is safe. Called
// on the worker's connection thread (or a check's), one plugin at a time.
#pragma once

#include <boost/dll/shared_library.hpp>

#include <memory>
#include <string>

namespace sbus {

// Copies `path` and loads the copy with `mode`. The library handed back
// keeps the copy open as long as it lives, and unloads before closing it.
// Throws PluginError naming `path` (not the copy) and the cause: no such
// file, cannot read it, or dlerror()'s reason (a missing symbol or
// dependency). When the copy lacks a dependency that the file finds, the
// file is loaded instead and *from_file (if given) says what the copy
// lacked; it is left alone otherwise.
std::shared_ptr<boost::dll::shared_library> load_plugin_image(const std::string& path, boost::dll::load_mode::type mode,
                                                              std::string* from_file = nullptr);

}  // namespace sbus
