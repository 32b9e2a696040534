// A framework-free status: the glue maps codes to TensorFlow's errors (cc/tf)
// or to dwop_status (cc/c_api).
#ifndef DWOP_CC_KERNELS_COMMON_STATUS_H_
#define DWOP_CC_KERNELS_COMMON_STATUS_H_

#include <string>
#include <utility>

namespace dwop {

class Status {
 public:
  // Values are part of the C ABI (dwop_status in cc/c_api/dwop_c.h).
  enum Code : int {
    kOk = 0,
    kInvalidArgument = 1,
    kResourceExhausted = 2,
    kInternal = 3,
    kUnavailable = 4,  // e.g. CUDA: not built in, no driver or no device
  };

  Status() = default;
  Status(Code code, std::string message)
      : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }
  static Status InvalidArgument(std::string message) {
    return Status(kInvalidArgument, std::move(message));
  }
  static Status ResourceExhausted(std::string message) {
    return Status(kResourceExhausted, std::move(message));
  }
  static Status Internal(std::string message) {
    return Status(kInternal, std::move(message));
  }
  static Status Unavailable(std::string message) {
    return Status(kUnavailable, std::move(message));
  }

  bool ok() const { return code_ == kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }

 private:
  Code code_ = kOk;
  std::string message_;
};

}  // namespace dwop

// Returns from the enclosing function when `expr` is not ok.
#define DWOP_RETURN_IF_ERROR(expr)               \
  do {                                           \
    ::dwop::Status dwop_status_ = (expr);        \
    if (!dwop_status_.ok()) return dwop_status_; \
  } while (0)

#endif  // DWOP_CC_KERNELS_COMMON_STATUS_H_
