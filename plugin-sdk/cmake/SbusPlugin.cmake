# sbus_add_plugin(NAME [NO_INSTALL] SOURCES...)
#
# Builds the sbus plugin NAME as NAME.so (CMake target sbus_plugin_NAME,
# since names like `test` are reserved) from SOURCES, against the plugin SDK
# (headers, RapidJSON) and the sender library, so that `plugin: NAME` in
# sbusd.yaml finds it in plugin_dir.
#
# `cmake --install` puts it in SBUS_PLUGIN_DIR, the folder where the sbusd
# of the sbus install found by find_package(sbus) looks for plugins (point
# CMAKE_PREFIX_PATH at that install's prefix). NO_INSTALL: build it only,
# as for a plugin that exists for tests.
#
# In the sbus tree the plugin lands in build/plugins/ and installs to
# PREFIX/lib/sbus/plugins/.
function(sbus_add_plugin name)
  cmake_parse_arguments(PARSE_ARGV 1 arg "NO_INSTALL" "" "")
  set(target sbus_plugin_${name})
  add_library(${target} MODULE ${arg_UNPARSED_ARGUMENTS})
  target_link_libraries(${target} PRIVATE sbus::plugin_sdk)
  set_target_properties(${target} PROPERTIES
    OUTPUT_NAME ${name}
    PREFIX ""
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON)
  if(TARGET sbus_sdk)
    # Installed in PREFIX/lib/sbus/plugins/: libsbus.so is three folders up.
    # The absolute path too: sbusd loads a private copy of the plugin, for
    # which $ORIGIN names /proc/self/fd.
    set_target_properties(${target} PROPERTIES
      LIBRARY_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/plugins
      INSTALL_RPATH "$ORIGIN/../../../${CMAKE_INSTALL_LIBDIR};${CMAKE_INSTALL_FULL_LIBDIR}")
    set(destination ${SBUS_INSTALL_PLUGINDIR})
  else()
    # Out of tree: libsbus.so stays where the sbus install has it.
    set_target_properties(${target} PROPERTIES INSTALL_RPATH "${SBUS_LIBRARY_DIR}")
    set(destination ${SBUS_PLUGIN_DIR})
  endif()
  if(NOT arg_NO_INSTALL)
    install(TARGETS ${target} LIBRARY DESTINATION ${destination})
  endif()
endfunction()
