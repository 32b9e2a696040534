// Replays fuzzer-generated problems through the C ABI in one process built
// with AddressSanitizer, UndefinedBehaviorSanitizer and LeakSanitizer (`make
// sanitize`). Linked statically with the instrumented kernels and C ABI, so
// every byte the library touches is checked, and leaks are reported at exit,
// which a Python host (whose own allocations LeakSanitizer would flag) cannot
// offer.
//
// Input: one problem per line, as `python -m fuzz --export` writes it (the
// format, and the tolerance each line carries, are documented once, in
// python/fuzz/export.py).
//
// For each problem: dwop_validate; then, when valid and small, both kernels on
// heap buffers of exactly the tensors' sizes (so any overrun is caught), the
// CPU kernel at every ISA level (DWOP_CPU_ISA), with the planner's and forced
// tilings (DWOP_CPU_PLAN), at 1, 3 and the problem's thread count, and the
// CUDA kernels emulated on the host (dwop_filter_grad_cuda_emulated) on each
// path for a small and a large GPU, checking that every
// output element is written, that the thread counts agree bit for bit and that
// the CPU kernel agrees with the reference; when invalid, both kernels on
// one-element buffers, checking they refuse and leave the output alone.
// Checking correctness against the float64 oracle is python/fuzz's job.
//
// Lines of the forward and the input gradient (op=forward, op=input_grad)
// run dwop_<op>_reference and dwop_<op>_cpu (every variant, thread count) the
// same way. These ops have no validation-only entry point: the driver takes
// the model's verdict (valid) and the output's shape (output) from the line,
// and checks that the kernels agree with it (a line it calls invalid is
// first probed with NULL buffers, so that an accepted one never runs on the
// one-element buffers).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "cc/c_api/dwop_c.h"
#include "cc/kernels/common/float16.h"
#include "tests/sanitize/cases.h"

namespace {

using dwop_replay::Case;
using dwop_replay::Ints;
using dwop_replay::Parse;
using dwop_replay::Problem;

constexpr int64_t kMaxElements = int64_t{1} << 20;

// The CPU kernel's variants, each run on every problem: its ISA levels
// (DWOP_CPU_ISA), with the planner's tiling and with a forced one of tiny
// bands, segments and channel groups cut into several pieces (DWOP_CPU_PLAN),
// so that even small problems run many chunks on many threads, both staged
// and in place (where the layout and type allow it). (Variables a kernel
// does not know are ignored.)
struct Variant {
  const char* isa;
  const char* plan;
};
constexpr Variant kVariants[] = {
    {"avx512", ""},
    {"avx2", ""},
    {"generic", ""},
    {"avx512",
     "inplace=0,band=2,pieces=3,group=1,segment=3,rowgroup=1,colgroup=1"},
    {"avx2", "inplace=0,band=1,pieces=2,group=1,segment=2,rows=1,cols=2"},
    {"generic", "inplace=0,band=3,pieces=4,group=1,segment=1,rowgroup=1"},
    {"avx512", "inplace=1,band=2,pieces=3,group=1"},
    {"avx2", "inplace=1,band=1,pieces=2,rows=1,cols=2"},
};
constexpr int kNumVariants = sizeof(kVariants) / sizeof(kVariants[0]);

std::string VariantName(int v) {
  return std::string(kVariants[v].isa) +
         (kVariants[v].plan[0] ? std::string(", ") + kVariants[v].plan : "");
}

int64_t DTypeBytes(int dtype) {
  return dtype == DWOP_DOUBLE ? 8 : dtype == DWOP_FLOAT ? 4 : 2;
}

// A heap buffer of exactly `elements` elements (ASan flags any overrun), or
// NULL. malloc(0) may return NULL or a unique pointer: both are valid for an
// empty tensor.
struct Buffer {
  Buffer(int64_t elements, int dtype, bool null)
      : bytes(elements * DTypeBytes(dtype)),
        data(null ? nullptr : std::malloc(static_cast<size_t>(bytes))) {}
  ~Buffer() { std::free(data); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  int64_t bytes;
  void* data;
};

// Deterministic values in [-1, 1], multiples of 1/8: exact in every dtype.
void Fill(Buffer* b, int dtype, int64_t elements, uint32_t seed) {
  if (b->data == nullptr) return;
  uint32_t state = seed * 2654435761u + 1;
  for (int64_t i = 0; i < elements; ++i) {
    state = state * 1664525u + 1013904223u;
    const float v = static_cast<float>(static_cast<int>(state >> 28) - 8) / 8;
    switch (dtype) {
      case DWOP_HALF:
        static_cast<dwop::half_t*>(b->data)[i] = dwop::ToHalf(v);
        break;
      case DWOP_BFLOAT16:
        static_cast<dwop::bfloat16_t*>(b->data)[i] = dwop::ToBfloat16(v);
        break;
      case DWOP_FLOAT:
        static_cast<float*>(b->data)[i] = v;
        break;
      default:
        static_cast<double*>(b->data)[i] = v;
    }
  }
}

double Get(const Buffer& b, int dtype, int64_t i) {
  switch (dtype) {
    case DWOP_HALF:
      return dwop::ToFloat(static_cast<const dwop::half_t*>(b.data)[i]);
    case DWOP_BFLOAT16:
      return dwop::ToFloat(static_cast<const dwop::bfloat16_t*>(b.data)[i]);
    case DWOP_FLOAT:
      return static_cast<const float*>(b.data)[i];
    default:
      return static_cast<const double*>(b.data)[i];
  }
}

int64_t Count(int64_t a, int64_t b, int64_t c, int64_t d) {
  return a == 0 || b == 0 || c == 0 || d == 0 ? 0 : a * b * c * d;
}

struct Stats {
  int cases = 0, computed = 0, validated = 0, refused = 0, failures = 0;
  std::map<std::string, int> ops;  // lines per op
};

void Fail(Stats* stats, const Case& c, const std::string& what) {
  ++stats->failures;
  std::cerr << "line " << c.line << ": " << what << "\n";
}

int64_t Elements(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d == 0) return 0;
  }
  for (int64_t d : shape) n *= d;  // only called on small valid shapes
  return n;
}

bool Small(const std::vector<int64_t>& shape) {
  // Zero-safe and overflow-safe: any zero makes it empty.
  for (int64_t d : shape) {
    if (d == 0) return true;
  }
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0 || d > kMaxElements || n * d > kMaxElements) return false;
    n *= d;
  }
  return true;
}

// dwop_<op>_cpu / dwop_<op>_reference of the forward and the input gradient:
// a and b are the two inputs (forward: input, filter; input gradient:
// filter, out_backprop), out the output (output, in_backprop).
dwop_status CallNew(const std::string& op, const dwop_problem* p, const void* a,
                    const void* b, void* out, int32_t threads, bool reference,
                    char* error, size_t error_size) {
  if (op == "forward") {
    return reference
               ? dwop_forward_reference(p, a, b, out, error, error_size)
               : dwop_forward_cpu(p, a, b, out, threads, error, error_size);
  }
  return reference
             ? dwop_input_grad_reference(p, a, b, out, error, error_size)
             : dwop_input_grad_cpu(p, a, b, out, threads, error, error_size);
}

void RunNew(const Case& c, const std::string& op, Stats* stats) {
  ++stats->cases;
  const dwop_problem problem = Problem(c);
  const int dtype = std::stoi(c.fields.at("dtype"));
  const bool valid = c.fields.at("valid") == "1";
  const std::string null_buffer = c.fields.at("null_buffer");
  const int32_t threads = std::stoi(c.fields.at("threads"));
  const uint32_t seed = static_cast<uint32_t>(std::stoul(c.fields.at("seed")));
  const char* const names[3] = {op == "forward" ? "input" : "filter",
                                op == "forward" ? "filter" : "out_backprop",
                                op == "forward" ? "output" : "in_backprop"};
  char error[256];
  if (!valid) {
    // The line's verdict is the model's, not the library's: first probe with
    // NULL buffers (refused for any non-empty tensor after validation), so
    // that a problem the library accepts never reaches the tiny buffers.
    const dwop_status probe = CallNew(op, &problem, nullptr, nullptr, nullptr,
                                      1, false, error, sizeof(error));
    if (probe == DWOP_OK || (null_buffer == "." &&
                             std::strstr(error, "buffer is NULL") != nullptr)) {
      Fail(stats, c, op + " accepted a problem the model refuses: " + error);
      ++stats->refused;
      return;
    }
    // Refusals: the kernels must not read the one-element inputs past their
    // end, nor write the output.
    const int safe_dtype = dtype >= 0 && dtype <= 3 ? dtype : DWOP_DOUBLE;
    Buffer a(1, safe_dtype, null_buffer == names[0]);
    Buffer b(1, safe_dtype, null_buffer == names[1]);
    Buffer out(1, safe_dtype, null_buffer == names[2]);
    if (out.data != nullptr) std::memset(out.data, 0xAB, out.bytes);
    for (bool reference : {false, true}) {
      const dwop_status s = CallNew(op, &problem, a.data, b.data, out.data, 2,
                                    reference, error, sizeof(error));
      if (s != DWOP_INVALID_ARGUMENT) {
        Fail(stats, c,
             op + (reference ? " reference" : " cpu") +
                 " did not refuse an invalid problem (status " +
                 std::to_string(s) + ")");
      }
    }
    const unsigned char* o = static_cast<const unsigned char*>(out.data);
    for (int64_t i = 0; o != nullptr && i < out.bytes; ++i) {
      if (o[i] != 0xAB) {
        Fail(stats, c, "output written on error");
        break;
      }
    }
    ++stats->refused;
    return;
  }
  std::vector<int64_t> output;
  try {
    output = Ints(c.fields.at("output"), nullptr);
  } catch (const std::exception&) {
    Fail(stats, c, "bad output field");
    return;
  }
  const std::vector<int64_t>& shape_a =
      op == "forward" ? c.input : c.filter_sizes;
  const std::vector<int64_t>& shape_b =
      op == "forward" ? c.filter_sizes : c.out_backprop;
  if (!Small(shape_a) || !Small(shape_b) || !Small(output)) {
    ++stats->validated;  // too large to run here (no validation-only entry)
    return;
  }
  const int64_t na = Elements(shape_a), nb = Elements(shape_b),
                no = Elements(output);
  Buffer a(na, dtype, null_buffer == names[0]);
  Buffer b(nb, dtype, null_buffer == names[1]);
  Fill(&a, dtype, na, seed);
  Fill(&b, dtype, nb, seed + 1);
  std::vector<Buffer*> outs;
  const int32_t thread_counts[] = {1, 3, threads};
  for (int i = 0; i < 1 + kNumVariants * 3; ++i) {
    Buffer* out = new Buffer(no, dtype, null_buffer == names[2]);
    if (out->data != nullptr) std::memset(out->data, 0xFF, out->bytes);
    if (i > 0) {
      setenv("DWOP_CPU_ISA", kVariants[(i - 1) / 3].isa, 1);
      setenv("DWOP_CPU_PLAN", kVariants[(i - 1) / 3].plan, 1);
    }
    const dwop_status s = CallNew(op, &problem, a.data, b.data, out->data,
                                  i == 0 ? 0 : thread_counts[(i - 1) % 3],
                                  i == 0, error, sizeof(error));
    if (s != DWOP_OK) {
      Fail(stats, c, op + " kernel failed: " + error);
    }
    outs.push_back(out);
  }
  unsetenv("DWOP_CPU_ISA");
  unsetenv("DWOP_CPU_PLAN");
  const double atol = std::stod(c.fields.at("atol"));
  for (int64_t i = 0; i < no && outs[0]->data != nullptr; ++i) {
    const double ref = Get(*outs[0], dtype, i);
    for (size_t k = 0; k < outs.size(); ++k) {
      const double v = Get(*outs[k], dtype, i);
      const std::string who =
          k == 0 ? "reference" : "cpu (" + VariantName((k - 1) / 3) + ")";
      if (!std::isfinite(v)) {
        Fail(stats, c,
             op + " " + who + ": output element " + std::to_string(i) +
                 " not written (or not finite)");
        break;
      }
      if (std::abs(v - ref) > atol) {
        Fail(stats, c,
             op + " " + who + " and reference differ at " + std::to_string(i));
        break;
      }
    }
  }
  for (size_t k = 1; k < outs.size() && no > 0; ++k) {
    const Buffer* first = outs[1 + (k - 1) / 3 * 3];  // same ISA, 1 thread
    if (first->data != nullptr &&
        std::memcmp(first->data, outs[k]->data, first->bytes) != 0) {
      Fail(stats, c,
           op + " cpu (" + VariantName((k - 1) / 3) +
               ") results differ between thread counts");
    }
  }
  for (Buffer* b : outs) delete b;
  ++stats->computed;
}

void Run(const Case& c, Stats* stats) {
  const auto op_field = c.fields.find("op");
  if (op_field != c.fields.end() && op_field->second != "filter_grad") {
    RunNew(c, op_field->second, stats);
    return;
  }
  ++stats->cases;
  const dwop_problem problem = Problem(c);
  const int dtype = std::stoi(c.fields.at("dtype"));
  char error[256];
  dwop_geometry g;
  const dwop_status status = dwop_validate(&problem, &g, error, sizeof(error));
  const std::string null_buffer = c.fields.at("null_buffer");
  const int32_t threads = std::stoi(c.fields.at("threads"));
  const uint32_t seed = static_cast<uint32_t>(std::stoul(c.fields.at("seed")));
  if (status != DWOP_OK && status != DWOP_INVALID_ARGUMENT) {
    Fail(stats, c, "dwop_validate returned " + std::to_string(status));
    return;
  }
  int64_t nx = 0, ny = 0, nw = 0;
  if (status == DWOP_OK) {
    // Zero-safe, as Geometry's counts: an empty tensor's other dimensions
    // may overflow int64 when multiplied.
    nx = Count(g.batch, g.in_rows, g.in_cols, g.in_depth);
    ny =
        Count(g.batch, g.out_rows, g.out_cols, g.in_depth * g.depth_multiplier);
    nw = Count(g.filter_rows, g.filter_cols, g.in_depth, g.depth_multiplier);
  }
  // A NULL buffer is refused only for a non-empty tensor.
  const bool null_refused = (null_buffer == "input" && nx > 0) ||
                            (null_buffer == "out_backprop" && ny > 0) ||
                            (null_buffer == "filter_backprop" && nw > 0);
  if (status != DWOP_OK || null_refused) {
    // Refusals: the kernels must not read the one-element inputs past their
    // end, nor write the output.
    const int safe_dtype = dtype >= 0 && dtype <= 3 ? dtype : DWOP_DOUBLE;
    Buffer x(1, safe_dtype, null_buffer == "input");
    Buffer dy(1, safe_dtype, null_buffer == "out_backprop");
    Buffer out(1, safe_dtype, null_buffer == "filter_backprop");
    if (out.data != nullptr) std::memset(out.data, 0xAB, out.bytes);
    const dwop_status cpu = dwop_filter_grad_cpu(
        &problem, x.data, dy.data, out.data, 2, error, sizeof(error));
    const dwop_status ref = dwop_filter_grad_reference(
        &problem, x.data, dy.data, out.data, error, sizeof(error));
    const dwop_status emulated = dwop_filter_grad_cuda_emulated(
        &problem, x.data, dy.data, out.data, DWOP_CUDA_AUTO, 2, 48 << 10, error,
        sizeof(error));
    if (cpu != DWOP_INVALID_ARGUMENT || ref != DWOP_INVALID_ARGUMENT ||
        emulated != DWOP_INVALID_ARGUMENT) {
      Fail(stats, c, "kernels did not refuse an invalid problem");
    }
    const unsigned char* o = static_cast<const unsigned char*>(out.data);
    for (int64_t i = 0; o != nullptr && i < out.bytes; ++i) {
      if (o[i] != 0xAB) Fail(stats, c, "output written on error");
    }
    ++stats->refused;
    return;
  }
  if (nx > kMaxElements || ny > kMaxElements || nw > kMaxElements) {
    ++stats->validated;
    return;
  }
  Buffer x(nx, dtype, null_buffer == "input");
  Buffer dy(ny, dtype, null_buffer == "out_backprop");
  Fill(&x, dtype, nx, seed);
  Fill(&dy, dtype, ny, seed + 1);
  // outs[0] is the reference; then, for each ISA level of the CPU kernel
  // (DWOP_CPU_ISA, read on every call; levels the CPU lacks fall back), the
  // three thread counts.
  std::vector<Buffer*> outs;
  const int32_t thread_counts[] = {1, 3, threads};
  for (int i = 0; i < 1 + kNumVariants * 3; ++i) {
    Buffer* out = new Buffer(nw, dtype, null_buffer == "filter_backprop");
    if (out->data != nullptr) std::memset(out->data, 0xFF, out->bytes);
    dwop_status s;
    if (i == 0) {
      s = dwop_filter_grad_reference(&problem, x.data, dy.data, out->data,
                                     error, sizeof(error));
    } else {
      setenv("DWOP_CPU_ISA", kVariants[(i - 1) / 3].isa, 1);
      setenv("DWOP_CPU_PLAN", kVariants[(i - 1) / 3].plan, 1);
      s = dwop_filter_grad_cpu(&problem, x.data, dy.data, out->data,
                               thread_counts[(i - 1) % 3], error,
                               sizeof(error));
    }
    if (s != DWOP_OK) Fail(stats, c, std::string("kernel failed: ") + error);
    outs.push_back(out);
  }
  unsetenv("DWOP_CPU_ISA");
  unsetenv("DWOP_CPU_PLAN");
  // Then the CUDA kernels' bodies, emulated on the host, for each path on a
  // small and a large GPU. A forced path may refuse a problem it cannot run
  // (the tiled one needs unit column stride and dilation and tiles that fit
  // shared memory), the automatic choice only one beyond the kernels' 32-bit
  // indexing (dimensions below 2^30): only with DWOP_INVALID_ARGUMENT, and
  // never an empty problem.
  const bool empty = nx == 0 || ny == 0 || nw == 0;
  std::vector<std::string> names(outs.size());
  for (const auto& device : {std::pair<int32_t, int64_t>{2, 48 << 10},
                             std::pair<int32_t, int64_t>{132, 227 << 10}}) {
    for (int32_t path : {DWOP_CUDA_AUTO, DWOP_CUDA_REGISTER, DWOP_CUDA_TILED}) {
      Buffer* out = new Buffer(nw, dtype, null_buffer == "filter_backprop");
      if (out->data != nullptr) std::memset(out->data, 0xFF, out->bytes);
      const dwop_status s = dwop_filter_grad_cuda_emulated(
          &problem, x.data, dy.data, out->data, path, device.first,
          device.second, error, sizeof(error));
      if (s == DWOP_INVALID_ARGUMENT && !empty &&
          (path != DWOP_CUDA_AUTO ||
           std::strstr(error, "with 32-bit integers") != nullptr)) {
        delete out;
        continue;
      }
      if (s != DWOP_OK) {
        Fail(stats, c, std::string("cuda_emulated failed: ") + error);
        delete out;
        continue;
      }
      outs.push_back(out);
      names.push_back("cuda_emulated path " + std::to_string(path) + " on " +
                      std::to_string(device.first) + " SMs");
    }
  }
  // python/tolerance.py's bound for this problem, exported with it.
  const double atol = std::stod(c.fields.at("atol"));
  for (int64_t i = 0; i < nw; ++i) {
    const double ref = Get(*outs[0], dtype, i);
    for (size_t k = 0; k < outs.size(); ++k) {
      const double v = Get(*outs[k], dtype, i);
      const std::string who = k == 0 ? "reference"
                              : !names[k].empty()
                                  ? names[k]
                                  : "cpu (" + VariantName((k - 1) / 3) + ")";
      if (!std::isfinite(v)) {
        Fail(stats, c,
             who + ": output element " + std::to_string(i) +
                 " not written (or not finite)");
        break;
      }
      if (std::abs(v - ref) > atol) {
        Fail(stats, c, who + " and reference differ at " + std::to_string(i));
        break;
      }
    }
  }
  for (size_t k = 1; k < 1 + kNumVariants * 3 && nw > 0; ++k) {
    const Buffer* first = outs[1 + (k - 1) / 3 * 3];  // same ISA, 1 thread
    if (std::memcmp(first->data, outs[k]->data, first->bytes) != 0) {
      Fail(stats, c,
           "cpu (" + VariantName((k - 1) / 3) +
               ") results differ between thread counts");
    }
  }
  for (Buffer* b : outs) delete b;
  ++stats->computed;
}

// The hostile calls a generated problem cannot express.
void EdgeCalls(Stats* stats) {
  Case c;
  c.line = 0;
  char error[8];
  dwop_geometry g;
  const int64_t shape[] = {1, 3, 3, 1}, sizes[] = {3, 3, 1, 1},
                ones[] = {1, 1, 1, 1};
  dwop_problem p;
  std::memset(&p, 0, sizeof(p));
  p.dtype = DWOP_FLOAT;
  p.input_shape = shape;
  p.input_rank = 4;
  p.filter_sizes = sizes;
  p.num_filter_sizes = 4;
  p.out_backprop_shape = shape;
  p.out_backprop_rank = 4;
  p.strides = ones;
  p.num_strides = 4;
  p.padding = "SAME";
  p.data_format = "NHWC";
  p.dilations = ones;
  p.num_dilations = 4;
  if (dwop_validate(nullptr, &g, error, sizeof(error)) !=
      DWOP_INVALID_ARGUMENT) {
    Fail(stats, c, "NULL problem accepted");
  }
  if (dwop_validate(&p, nullptr, nullptr, 100) != DWOP_OK) {
    Fail(stats, c, "NULL geometry and error rejected");
  }
  p.padding = "BOGUS";
  for (size_t size : {size_t{0}, size_t{1}, sizeof(error)}) {
    std::memset(error, 'z', sizeof(error));
    if (dwop_validate(&p, &g, error, size) != DWOP_INVALID_ARGUMENT) {
      Fail(stats, c, "bad padding accepted");
    }
    if (size == 0 && error[0] != 'z') Fail(stats, c, "wrote 0-byte buffer");
    if (size > 0 && std::strlen(error) != size - 1) {
      Fail(stats, c, "message not truncated to the buffer");
    }
  }
  if (dwop_validate(&p, &g, nullptr, 64) != DWOP_INVALID_ARGUMENT) {
    Fail(stats, c, "NULL error buffer broke the refusal");
  }
  // The forward and the input gradient: a NULL problem, and a refusal with
  // a truncated (or no) error buffer.
  float one = 0.0f;
  for (const char* op : {"forward", "input_grad"}) {
    if (CallNew(op, nullptr, &one, &one, &one, 1, false, error,
                sizeof(error)) != DWOP_INVALID_ARGUMENT ||
        CallNew(op, nullptr, &one, &one, &one, 1, true, error, sizeof(error)) !=
            DWOP_INVALID_ARGUMENT) {
      Fail(stats, c, std::string(op) + ": NULL problem accepted");
    }
    for (size_t size : {size_t{0}, size_t{1}, sizeof(error)}) {
      std::memset(error, 'z', sizeof(error));
      if (CallNew(op, &p, &one, &one, &one, 1, false, error, size) !=
          DWOP_INVALID_ARGUMENT) {
        Fail(stats, c, std::string(op) + ": bad padding accepted");
      }
      if (size == 0 && error[0] != 'z') Fail(stats, c, "wrote 0-byte buffer");
      if (size > 0 && std::strlen(error) != size - 1) {
        Fail(stats, c, "message not truncated to the buffer");
      }
    }
    if (CallNew(op, &p, &one, &one, &one, 1, true, nullptr, 64) !=
        DWOP_INVALID_ARGUMENT) {
      Fail(stats, c, std::string(op) + ": NULL error buffer broke it");
    }
    if (one != 0.0f) Fail(stats, c, std::string(op) + ": wrote on error");
  }
  stats->cases += 6 + 2 * 6;
}

}  // namespace

// Writes past a too-small output buffer on purpose: an instrumented build
// must abort here, which `make sanitize` checks so that a build that silently
// lost its instrumentation cannot pass.
int Canary() {
  const int64_t shape[] = {1, 4, 4, 1}, sizes[] = {3, 3, 1, 1},
                ones[] = {1, 1, 1, 1};
  dwop_problem p;
  std::memset(&p, 0, sizeof(p));
  p.dtype = DWOP_FLOAT;
  p.input_shape = p.out_backprop_shape = shape;
  p.input_rank = p.out_backprop_rank = 4;
  p.filter_sizes = sizes;
  p.num_filter_sizes = 4;
  p.strides = p.dilations = ones;
  p.num_strides = p.num_dilations = 4;
  p.padding = "SAME";
  p.data_format = "NHWC";
  std::vector<float> x(16, 1.0f);
  float* out = static_cast<float*>(std::malloc(8 * sizeof(float)));  // 9 due
  dwop_filter_grad_reference(&p, x.data(), x.data(), out, nullptr, 0);
  std::free(out);
  std::printf("canary: no sanitizer report for a heap overflow\n");
  return 0;
}

int main(int argc, char** argv) {
  if (argc == 2 && std::string(argv[1]) == "--canary") return Canary();
  if (argc != 2) {
    std::cerr << "usage: " << argv[0] << " CASES_FILE | --canary\n";
    return 2;
  }
  std::ifstream in(argv[1]);
  if (!in) {
    std::cerr << "cannot read " << argv[1] << "\n";
    return 2;
  }
  Stats stats;
  EdgeCalls(&stats);
  std::string line;
  int number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (line.empty()) continue;
    Case c;
    c.line = number;
    if (!Parse(line, &c)) {
      Fail(&stats, c, "unparsable line");
      continue;
    }
    const auto op = c.fields.find("op");
    ++stats.ops[op == c.fields.end() ? "filter_grad" : op->second];
    Run(c, &stats);
  }
  std::printf(
      "sanitize replay: %d cases: %d computed (reference; the CPU kernel in "
      "%d ISA/tiling variants x 3 thread counts; the CUDA kernels emulated, "
      "3 paths x 2 devices), "
      "%d validated only, %d refused; %d failure(s)\n",
      stats.cases, stats.computed, kNumVariants, stats.validated, stats.refused,
      stats.failures);
  for (const auto& [op, n] : stats.ops) {
    std::printf("  op %s: %d line(s)\n", op.c_str(), n);
  }
  return stats.failures == 0 ? 0 : 1;
}
