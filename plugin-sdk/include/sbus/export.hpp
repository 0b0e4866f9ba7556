// SBUS_EXPORT marks what libsbus.so exports: it is built with hidden
// visibility, so only these names are part of its ABI.
#pragma once

#define SBUS_EXPORT __attribute__((visibility("default")))
