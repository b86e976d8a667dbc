#include "orchestrator/learn_policy.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <charconv>

#include "common/model/untrusted.h"

namespace pgherald::orchestrator {
namespace {

// Fills `out` (4 or 16 bytes used) when `text` is an IP literal of that family.
bool ParseAddress(std::string_view text, bool* v6, std::array<std::uint8_t, 16>* out) {
  const std::string s(text);
  out->fill(0);
  if (inet_pton(AF_INET, s.c_str(), out->data()) == 1) {
    *v6 = false;
    return true;
  }
  if (inet_pton(AF_INET6, s.c_str(), out->data()) == 1) {
    *v6 = true;
    return true;
  }
  return false;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

StatusOr<Network> Network::Parse(std::string_view text) {
  Network n;
  n.text = std::string(text);
  const auto slash = text.find('/');
  const std::string_view address = text.substr(0, slash);
  if (!ParseAddress(address, &n.v6, &n.address)) {
    return InvalidArgument("\"" + n.text +
                           "\" is not a network: expected an IP address with an "
                           "optional /prefix, such as 10.1.0.0/16 or fd00::/8");
  }
  const int bits = n.v6 ? 128 : 32;
  n.prefix = bits;
  if (slash != std::string_view::npos) {
    const std::string_view p = text.substr(slash + 1);
    int value = -1;
    auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), value);
    if (p.empty() || ec != std::errc() || end != p.data() + p.size() || value < 0 || value > bits) {
      return InvalidArgument("\"" + n.text + "\": the prefix length must be 0.." +
                             std::to_string(bits));
    }
    n.prefix = value;
  }
  return n;
}

bool Network::Contains(std::string_view host) const {
  bool v6_host = false;
  std::array<std::uint8_t, 16> a{};
  if (!ParseAddress(host, &v6_host, &a) || v6_host != v6) return false;
  int left = prefix;
  for (std::size_t i = 0; left > 0; ++i, left -= 8) {
    const std::uint8_t mask = left >= 8 ? 0xff : static_cast<std::uint8_t>(0xff << (8 - left));
    if ((a[i] & mask) != (address[i] & mask)) return false;
  }
  return true;
}

bool GlobMatch(std::string_view pattern, std::string_view text) {
  // Iterative with one backtrack point: linear enough for short names, no recursion.
  std::size_t p = 0, t = 0, star = std::string_view::npos, mark = 0;
  while (t < text.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      mark = t;
    } else if (p < pattern.size() && pattern[p] == text[t]) {
      ++p;
      ++t;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      t = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

std::string CheckLearnable(const LearnPolicy& policy,
                           const std::vector<std::string>& configured_hosts,
                           const LearnCandidate& c) {
  if (!c.ephemeral) return kLearnNotEphemeral;
  if (!untrusted::IsValidName(c.name)) return kLearnInvalidName;
  if (!untrusted::IsValidHost(c.host)) return kLearnInvalidHost;
  if (!untrusted::IsValidPort(c.port)) return kLearnInvalidPort;
  bool host_ok = false;
  if (policy.networks.empty()) {
    const std::string host = Lower(c.host);
    host_ok = std::any_of(configured_hosts.begin(), configured_hosts.end(),
                          [&](const std::string& h) { return Lower(h) == host; });
  } else {
    host_ok = std::any_of(policy.networks.begin(), policy.networks.end(),
                          [&](const Network& n) { return n.Contains(c.host); });
  }
  if (!host_ok) return kLearnHostNotAllowed;
  if (!policy.names.empty() &&
      std::none_of(policy.names.begin(), policy.names.end(),
                   [&](const std::string& g) { return GlobMatch(g, c.name); })) {
    return kLearnNameNotAllowed;
  }
  return "";
}

ObservationSelection SelectObservations(std::vector<std::string> children,
                                        const std::vector<std::string>& configured, int learn_max) {
  std::sort(children.begin(), children.end());
  children.erase(std::unique(children.begin(), children.end()), children.end());
  const std::size_t others_max =
      static_cast<std::size_t>(std::max(learn_max, 0)) + kObservationsBeyondLearned;
  ObservationSelection out;
  std::size_t others = 0;
  for (std::string& name : children) {
    const bool is_configured = std::find(configured.begin(), configured.end(), name) != configured.end();
    if (!is_configured && others >= others_max) {
      if (out.left_out++ == 0) out.first_left_out = name;
      continue;
    }
    if (!is_configured) ++others;
    out.names.push_back(std::move(name));
  }
  return out;
}

}  // namespace pgherald::orchestrator
