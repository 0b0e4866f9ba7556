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
# A plugin whose SOURCES are all C (.c) is built as C11 against the C ABI
# (sbus/plugin.h) alone: -Wall -Werror, no C++ and no libsbus.so.
#
# In the sbus tree the plugin lands in build/plugins/ and installs to
# PREFIX/lib/sbus/plugins/.
function(sbus_add_plugin name)
  cmake_parse_arguments(PARSE_ARGV 1 arg "NO_INSTALL" "" "")
  set(target sbus_plugin_${name})
  add_library(${target} MODULE ${arg_UNPARSED_ARGUMENTS})
  set(c_only ON)
  foreach(source ${arg_UNPARSED_ARGUMENTS})
    if(NOT source MATCHES "\\.c$")
      set(c_only OFF)
    endif()
  endforeach()
  if(c_only)
    target_link_libraries(${target} PRIVATE sbus::sdk)
    target_compile_options(${target} PRIVATE -Wall -Werror)
    set_target_properties(${target} PROPERTIES C_STANDARD 11 C_STANDARD_REQUIRED ON C_EXTENSIONS OFF)
  else()
    target_link_libraries(${target} PRIVATE sbus::plugin_sdk)
  endif()
  set_target_properties(${target} PROPERTIES
    OUTPUT_NAME ${name}
    PREFIX ""
    C_VISIBILITY_PRESET hidden
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON)
  if(TARGET sbus_sdk)
    # Installed in PREFIX/lib/sbus/plugins/: libsbus.so is three folders up.
    set_target_properties(${target} PROPERTIES
      LIBRARY_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/plugins
      INSTALL_RPATH "$ORIGIN/../../../${CMAKE_INSTALL_LIBDIR}")
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

# sbus_add_cargo_plugin(NAME)
#
# Builds the Rust crate of this folder (Cargo.toml, a cdylib named NAME with
# hand-written bindings of sbus/plugin.h and no dependencies) into NAME.so
# beside the other plugins (CMake target sbus_plugin_NAME), with Debian's
# /usr/bin/cargo and /usr/bin/rustc (scripts/deps installs them), offline,
# whatever comes first on PATH. Built only; not installed.
function(sbus_add_cargo_plugin name)
  find_program(SBUS_CARGO cargo PATHS /usr/bin NO_DEFAULT_PATH)
  find_program(SBUS_RUSTC rustc PATHS /usr/bin NO_DEFAULT_PATH)
  if(NOT SBUS_CARGO OR NOT SBUS_RUSTC)
    message(WARNING "/usr/bin/cargo or /usr/bin/rustc missing (scripts/deps installs them): ${name}.so is not built")
    return()
  endif()
  set(output ${CMAKE_BINARY_DIR}/plugins/${name}.so)
  set(target_dir ${CMAKE_CURRENT_BINARY_DIR}/cargo-target)
  file(GLOB sources CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/src/*.rs)
  add_custom_command(OUTPUT ${output}
    COMMAND ${CMAKE_COMMAND} -E env RUSTC=${SBUS_RUSTC} CARGO_HOME=${CMAKE_CURRENT_BINARY_DIR}/cargo-home
      ${SBUS_CARGO} build --offline --locked --release --quiet
      --manifest-path ${CMAKE_CURRENT_SOURCE_DIR}/Cargo.toml --target-dir ${target_dir}
    COMMAND ${CMAKE_COMMAND} -E copy ${target_dir}/release/lib${name}.so ${output}
    DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/Cargo.toml ${CMAKE_CURRENT_SOURCE_DIR}/Cargo.lock ${sources}
    COMMENT "cargo: ${name}.so")
  add_custom_target(sbus_plugin_${name} ALL DEPENDS ${output})
endfunction()

# sbus_add_go_plugin(NAME)
#
# Builds the Go package of this folder (go.mod, no dependencies) with
# -buildmode=c-shared into NAME.so beside the other plugins (CMake target
# sbus_plugin_NAME), with Debian's go (/usr/lib/go-1.19/bin/go or
# /usr/bin/go; scripts/deps installs golang-go), offline, its caches in the
# build folder. Built only; not installed. One Go runtime per process: see
# docs/plugins.md.
function(sbus_add_go_plugin name)
  find_program(SBUS_GO go PATHS /usr/lib/go-1.19/bin /usr/bin NO_DEFAULT_PATH)
  if(NOT SBUS_GO)
    message(WARNING "Debian's go is missing (scripts/deps installs golang-go): ${name}.so is not built")
    return()
  endif()
  set(output ${CMAKE_BINARY_DIR}/plugins/${name}.so)
  file(GLOB sources CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/*.go ${CMAKE_CURRENT_SOURCE_DIR}/*.c)
  add_custom_command(OUTPUT ${output}
    COMMAND ${CMAKE_COMMAND} -E env GOCACHE=${CMAKE_CURRENT_BINARY_DIR}/go-cache
      GOPATH=${CMAKE_CURRENT_BINARY_DIR}/go-path GOFLAGS=-mod=mod GOPROXY=off GOTOOLCHAIN=local CGO_ENABLED=1
      ${SBUS_GO} build -buildmode=c-shared -o ${output} .
    WORKING_DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR}
    DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/go.mod ${sources}
    COMMENT "go: ${name}.so")
  add_custom_target(sbus_plugin_${name} ALL DEPENDS ${output})
endfunction()
