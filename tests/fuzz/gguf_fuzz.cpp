// libFuzzer target: the GGUF reader on arbitrary bytes. Any input must either parse or throw
// lookahead::Error; a crash, sanitizer report, leak or hang is a bug.
#include <cstddef>
#include <cstdint>

#include "common/error.h"
#include "moe/format/gguf.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lookahead::moe;
  try {
    GgufFile f("fuzz.gguf", data, size);
    // Every accessor on every key: each either returns or throws Error, whatever the value type.
    for (const auto& [key, value] : f.metadata()) {
      try { (void)f.get_int(key); } catch (const lookahead::Error&) {}
      try { (void)f.get_float(key); } catch (const lookahead::Error&) {}
      try { (void)f.get_bool(key); } catch (const lookahead::Error&) {}
      try { (void)f.get_string(key); } catch (const lookahead::Error&) {}
      try { (void)f.get_string_array(key); } catch (const lookahead::Error&) {}
      try { (void)f.get_float_array(key); } catch (const lookahead::Error&) {}
      try { (void)f.get_int_array(key); } catch (const lookahead::Error&) {}
    }
    // Tensor views must lie inside the input: touch their first and last bytes.
    unsigned sum = 0;
    for (const auto& t : f.tensors()) {
      if (t.bytes) sum += t.data[0] + t.data[t.bytes - 1];
      sum += static_cast<unsigned>(t.rows() + t.elements());
    }
    volatile unsigned sink = sum;
    (void)sink;
  } catch (const lookahead::Error&) {
  }
  return 0;
}
