// A shared object that exports a function but no sbus_plugin_descriptor: not
// an sbus plugin.
extern "C" __attribute__((visibility("default"))) int sbus_not_a_plugin() {
  return 42;
}
