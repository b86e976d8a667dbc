#include "common/prometheus.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "common/build_info.h"

namespace pgherald::prom {

std::string EscapeLabelValue(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '"':
        out += "\\\"";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string FormatSampleValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  char buf[64];
  if (value == std::floor(value) && std::fabs(value) < 1e15) {
    std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(value));
  } else {
    // The shortest spelling that reads back as the same double.
    for (int precision = 6; precision <= 17; ++precision) {
      std::snprintf(buf, sizeof buf, "%.*g", precision, value);
      if (std::strtod(buf, nullptr) == value) break;
    }
  }
  return buf;
}

void PromText::Family(const std::string& name, const std::string& type, const std::string& help) {
  // HELP text escapes backslash and line feed (not quotes).
  std::string h;
  for (char c : help) {
    if (c == '\\')
      h += "\\\\";
    else if (c == '\n')
      h += "\\n";
    else
      h += c;
  }
  text_ += "# HELP " + name + " " + h + "\n# TYPE " + name + " " + type + "\n";
}

void PromText::Sample(const std::string& name, const Labels& labels, double value) {
  text_ += name;
  if (!labels.empty()) {
    text_ += "{";
    bool first = true;
    for (const auto& [k, v] : labels) {
      if (!first) text_ += ",";
      first = false;
      text_ += k + "=\"" + EscapeLabelValue(v) + "\"";
    }
    text_ += "}";
  }
  text_ += " " + FormatSampleValue(value) + "\n";
}

const std::vector<double>& Histogram::DefaultBounds() {
  static const std::vector<double> kBounds = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                              0.25,  0.5,    1,     2.5,  5,     10};
  return kBounds;
}

void Histogram::Observe(double value) {
  for (std::size_t i = 0; i < bounds.size(); ++i) {
    if (value <= bounds[i]) {
      ++counts[i];
      break;
    }
  }
  sum += value;
  ++count;
}

void Histogram::Render(PromText& out, const std::string& name, const Labels& labels) const {
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < bounds.size(); ++i) {
    cumulative += counts[i];
    Labels l = labels;
    char le[32];
    std::snprintf(le, sizeof le, "%g", bounds[i]);
    l.emplace_back("le", le);
    out.Sample(name + "_bucket", l, static_cast<double>(cumulative));
  }
  Labels inf = labels;
  inf.emplace_back("le", "+Inf");
  out.Sample(name + "_bucket", inf, static_cast<double>(count));
  out.Sample(name + "_sum", labels, sum);
  out.Sample(name + "_count", labels, static_cast<double>(count));
}

void RenderBuildInfo(PromText& out) {
  out.Family("pgherald_build_info", "gauge",
             "Always 1; the labels say which pgherald this is (version, git commit, build type).");
  out.Sample("pgherald_build_info",
             {{"version", build::Version()}, {"commit", build::Commit()},
              {"build_type", build::BuildType()}},
             1);
}

}  // namespace pgherald::prom
