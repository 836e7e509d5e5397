// The shim's error convention, shared by its translation units: every entry point runs its body in
// `guarded`, which catches all C++ exceptions and returns them as a heap-allocated message (freed
// by `fdx_free_error`), because unwinding across the FFI boundary into Rust is undefined
// behaviour. A null return means success.
#pragma once

#include <c10/util/Exception.h>

#include <cstdlib>
#include <cstring>
#include <exception>

namespace fdx {

inline char* dup_message(const char* msg) {
  // strdup uses malloc, paired with free in fdx_free_error.
  return strdup(msg == nullptr ? "unknown C++ exception" : msg);
}

template <typename F>
char* guarded(F&& f) {
  try {
    f();
    return nullptr;
  } catch (const c10::Error& e) {
    // what_without_backtrace keeps the message readable; the backtrace is noise for callers.
    return dup_message(e.what_without_backtrace());
  } catch (const std::exception& e) {
    return dup_message(e.what());
  } catch (...) {
    return dup_message("unknown C++ exception");
  }
}

}  // namespace fdx
