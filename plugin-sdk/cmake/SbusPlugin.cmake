# sbus_add_plugin(NAME SOURCES...)
#
# Builds the sbus plugin NAME as NAME.so (CMake target sbus_plugin_NAME,
# since names like `test` are reserved) from SOURCES, against the plugin SDK
# (headers, RapidJSON) and the sender library, so that `plugin: NAME` in
# sbusd.yaml finds it in plugin_dir. In the sbus tree it lands in
# build/plugins/ and installs to lib/sbus/plugins/.
function(sbus_add_plugin name)
  set(target sbus_plugin_${name})
  add_library(${target} MODULE ${ARGN})
  target_link_libraries(${target} PRIVATE sbus::plugin_sdk)
  set_target_properties(${target} PROPERTIES
    OUTPUT_NAME ${name}
    PREFIX ""
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON)
  if(TARGET sbus_sdk)
    # Installed in lib/sbus/plugins/: libsbus.so is three folders up.
    set_target_properties(${target} PROPERTIES
      LIBRARY_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/plugins
      INSTALL_RPATH "$ORIGIN/../../../${CMAKE_INSTALL_LIBDIR}")
    install(TARGETS ${target} LIBRARY DESTINATION lib/sbus/plugins)
  endif()
endfunction()
