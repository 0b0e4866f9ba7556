# Installs the example config and the systemd unit with the paths of this
# install (run by `cmake --install`, after CMakeLists.txt set SBUS_*).
#
# The prefix is the one `cmake --install --prefix` was given, else the
# configured one. As GNUInstallDirs does: prefix /usr keeps its config in
# /etc, any other prefix P in P/etc.
set(_prefix "${CMAKE_INSTALL_PREFIX}")
if(IS_ABSOLUTE "${SBUS_INSTALL_SYSCONFDIR}")
  set(_etc "${SBUS_INSTALL_SYSCONFDIR}/sbus")
elseif(_prefix STREQUAL "/usr")
  set(_etc "/etc/sbus")
else()
  set(_etc "${_prefix}/${SBUS_INSTALL_SYSCONFDIR}/sbus")
endif()
set(_plugins "${_prefix}/${SBUS_INSTALL_PLUGINDIR}")
set(_sbusd "${_prefix}/${SBUS_INSTALL_BINDIR}/sbusd")

# The files in the source tree name the paths of a /usr install; file(INSTALL)
# puts $DESTDIR in front of the destination.
function(_sbus_install_rewritten source destination name)
  file(READ "${source}" _text)
  string(REPLACE "/usr/lib/sbus/plugins" "${_plugins}" _text "${_text}")
  string(REPLACE "/usr/bin/sbusd" "${_sbusd}" _text "${_text}")
  string(REPLACE "/etc/sbus" "${_etc}" _text "${_text}")
  set(_out "${SBUS_BINARY_DIR}/install-files/${name}")
  file(WRITE "${_out}" "${_text}")
  file(INSTALL "${_out}" DESTINATION "${destination}")
endfunction()

_sbus_install_rewritten("${SBUS_SOURCE_DIR}/systemd/sbusd.service" "${_prefix}/lib/systemd/system" sbusd.service)
_sbus_install_rewritten("${SBUS_SOURCE_DIR}/config/sbusd.yaml" "${_prefix}/${SBUS_INSTALL_DATADIR}/sbus" sbusd.yaml.example)
if(EXISTS "$ENV{DESTDIR}${_etc}/sbusd.yaml")
  message(STATUS "Keeping existing: $ENV{DESTDIR}${_etc}/sbusd.yaml")
else()
  file(INSTALL "${SBUS_BINARY_DIR}/install-files/sbusd.yaml.example" DESTINATION "${_etc}"
       RENAME sbusd.yaml)
endif()
