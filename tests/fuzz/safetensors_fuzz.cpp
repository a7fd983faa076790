// libFuzzer target: the safetensors reader on arbitrary bytes. Any input must either parse or
// throw lookahead::Error; a crash, sanitizer report, leak or hang is a bug.
#include <cstddef>
#include <cstdint>

#include "common/error.h"
#include "moe/format/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lookahead::moe;
  try {
    SafetensorsFile f("fuzz.safetensors", data, size);
    // Tensor views must lie inside the input: touch their first and last bytes.
    unsigned sum = 0;
    for (const auto& t : f.tensors()) {
      if (t.bytes) sum += t.data[0] + t.data[t.bytes - 1];
      sum += static_cast<unsigned>(t.rows() + t.elements());
      if (f.find_tensor(t.name) != &t) __builtin_trap();
    }
    volatile unsigned sink = sum + static_cast<unsigned>(f.metadata().size());
    (void)sink;
  } catch (const lookahead::Error&) {
  }
  return 0;
}
