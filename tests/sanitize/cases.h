// The replay driver's input (tests/sanitize/replay.cc): one case per line, as
// `python -m fuzz --export` writes it (the format is documented in
// python/fuzz/export.py), parsed into a Case and turned into the
// dwop_problem a C caller would pass.
#ifndef DWOP_TESTS_SANITIZE_CASES_H_
#define DWOP_TESTS_SANITIZE_CASES_H_

#include <cstdint>
#include <cstring>
#include <exception>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "cc/c_api/dwop_c.h"

namespace dwop_replay {

struct Case {
  std::map<std::string, std::string> fields;
  std::vector<int64_t> input, filter_sizes, out_backprop, strides,
      explicit_paddings, dilations;
  bool null_strides = false, null_dilations = false;
  std::string padding, data_format;
  bool null_padding = false, null_data_format = false;
  int line = 0;
};

inline std::vector<int64_t> Ints(const std::string& s, bool* null) {
  std::vector<int64_t> v;
  if (null != nullptr) *null = s == "-";
  if (s == "." || s == "-") return v;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) v.push_back(std::stoll(item));
  return v;
}

inline std::string Hex(const std::string& s, bool* null) {
  *null = s == "-";
  std::string out;
  for (size_t i = 1; i + 1 < s.size(); i += 2) {
    out.push_back(static_cast<char>(std::stoi(s.substr(i, 2), nullptr, 16)));
  }
  return out;
}

inline bool Parse(const std::string& line, Case* c) {
  std::stringstream ss(line);
  std::string token;
  while (ss >> token) {
    const size_t eq = token.find('=');
    if (eq == std::string::npos) return false;
    c->fields[token.substr(0, eq)] = token.substr(eq + 1);
  }
  try {
    c->input = Ints(c->fields.at("input"), nullptr);
    c->filter_sizes = Ints(c->fields.at("filter_sizes"), nullptr);
    c->out_backprop = Ints(c->fields.at("out_backprop"), nullptr);
    c->strides = Ints(c->fields.at("strides"), &c->null_strides);
    c->explicit_paddings = Ints(c->fields.at("explicit_paddings"), nullptr);
    c->dilations = Ints(c->fields.at("dilations"), &c->null_dilations);
    c->padding = Hex(c->fields.at("padding"), &c->null_padding);
    c->data_format = Hex(c->fields.at("data_format"), &c->null_data_format);
  } catch (const std::exception&) {
    return false;
  }
  return true;
}

inline const int64_t* Data(const std::vector<int64_t>& v, bool null) {
  if (null) return nullptr;
  return v.empty() ? nullptr : v.data();
}

inline dwop_problem Problem(const Case& c) {
  dwop_problem p;
  std::memset(&p, 0, sizeof(p));
  // Any int, as a C caller may store: through memcpy, since a C++ load of an
  // out-of-range enum value is undefined.
  const int32_t dtype = std::stoi(c.fields.at("dtype"));
  std::memcpy(&p.dtype, &dtype, sizeof(dtype));
  p.input_shape = Data(c.input, false);
  p.input_rank = static_cast<int32_t>(c.input.size());
  p.filter_sizes = Data(c.filter_sizes, false);
  p.num_filter_sizes = static_cast<int32_t>(c.filter_sizes.size());
  p.out_backprop_shape = Data(c.out_backprop, false);
  p.out_backprop_rank = static_cast<int32_t>(c.out_backprop.size());
  p.strides = Data(c.strides, c.null_strides);
  p.num_strides = static_cast<int32_t>(c.strides.size());
  p.padding = c.null_padding ? nullptr : c.padding.c_str();
  p.explicit_paddings = Data(c.explicit_paddings, false);
  p.num_explicit_paddings = static_cast<int32_t>(c.explicit_paddings.size());
  p.data_format = c.null_data_format ? nullptr : c.data_format.c_str();
  p.dilations = Data(c.dilations, c.null_dilations);
  p.num_dilations = static_cast<int32_t>(c.dilations.size());
  const std::string null = c.fields.at("null");
  const std::string negative = c.fields.at("negative_count");
  struct Field {
    const char* name;
    const int64_t** data;
    int32_t* count;
  } fields[] = {
      {"strides", &p.strides, &p.num_strides},
      {"explicit_paddings", &p.explicit_paddings, &p.num_explicit_paddings},
      {"dilations", &p.dilations, &p.num_dilations},
      {"input_shape", &p.input_shape, &p.input_rank},
      {"filter_sizes", &p.filter_sizes, &p.num_filter_sizes},
      {"out_backprop_shape", &p.out_backprop_shape, &p.out_backprop_rank},
  };
  for (const Field& f : fields) {
    if (null == f.name) {
      *f.data = nullptr;
      if (*f.count == 0) *f.count = 1;
    }
    if (negative == f.name) *f.count = -1;
  }
  if (null == "padding") p.padding = nullptr;
  if (null == "data_format") p.data_format = nullptr;
  return p;
}

}  // namespace dwop_replay

#endif  // DWOP_TESTS_SANITIZE_CASES_H_
