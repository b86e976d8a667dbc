// Prometheus' text exposition format (0.0.4), shared by every daemon's /metrics (the orchestrator's
// orchestrator/metrics.h, the poller's pollers/poller_metrics.h, the watch's
// clients/watch/watch_metrics.h), and the build-info family all of them export.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pgherald::prom {

using Labels = std::vector<std::pair<std::string, std::string>>;

// Prometheus label value escaping: backslash, double quote and line feed become \\, \" and \n.
std::string EscapeLabelValue(std::string_view value);
// A sample value: integers without exponent or fraction, "NaN", "+Inf", "-Inf", else the shortest
// %g that reads back exactly.
std::string FormatSampleValue(double value);

// Builds the text format: one # HELP and # TYPE per family, then its samples.
class PromText {
 public:
  void Family(const std::string& name, const std::string& type, const std::string& help);
  void Sample(const std::string& name, const Labels& labels, double value);
  const std::string& text() const { return text_; }

 private:
  std::string text_;
};

// A cumulative histogram with fixed upper bounds (seconds).
struct Histogram {
  static const std::vector<double>& DefaultBounds();  // 1ms .. 10s
  std::vector<double> bounds = DefaultBounds();
  std::vector<std::uint64_t> counts = std::vector<std::uint64_t>(DefaultBounds().size(), 0);
  double sum = 0;
  std::uint64_t count = 0;

  void Observe(double value);
  // Writes name_bucket{...,le}, name_sum, name_count (the family header is the caller's).
  void Render(PromText& out, const std::string& name, const Labels& labels) const;
};

// pgherald_build_info{version,commit,build_type} 1 (common/build_info.h).
void RenderBuildInfo(PromText& out);

// The Content-Type of the text format.
inline constexpr char kContentType[] = "text/plain; version=0.0.4; charset=utf-8";

}  // namespace pgherald::prom
