// A tiny {{variable}} template language for the files `pgherald watch` renders (HAProxy's config,
// pgbouncer's [databases] file). Deliberately minimal: no loops, no conditionals, no escaping.
//
//   backend pg_primary
//       server primary {{host}}:{{port}} check {{server_state}}
//
// Rules: `{{ name }}` (spaces inside the braces allowed) is replaced by the variable's value; a
// name is [A-Za-z0-9_]+. Every other byte is copied as is. There is no escape for a literal "{{".
//
// Values come from the master record, which is untrusted input (a newline in a host would add a
// `program` section to haproxy.cfg, and HAProxy runs it). So:
//   - a value holding an ASCII control character (newline, CR, tab, NUL, ...) is never rendered;
//   - each caller declares what each variable may hold (TemplateRules: a host is a host name or IP
//     address, a port is 1..65535, ...) and a value outside its rule is never rendered;
//   - the rendered text has exactly as many lines as the template (checked after rendering).
// A refused value fails the whole rendering; nothing partial is returned.
#pragma once

#include <map>
#include <string>
#include <string_view>

#include "common/base/status.h"

namespace pgherald {

using TemplateVars = std::map<std::string, std::string>;

// What one variable's value may hold: `allows` decides, `description` completes "must be ..." in
// the error message.
struct ValueRule {
  const char* description;
  bool (*allows)(std::string_view value);
};
using TemplateRules = std::map<std::string, ValueRule>;

// The rules the sinks use.
ValueRule NameValue();    // untrusted::IsValidName (cluster and node names)
ValueRule HostValue();    // untrusted::IsValidHost
ValueRule PortValue();    // decimal digits, 1..65535
ValueRule NumberValue();  // decimal digits (epoch, timeline)
ValueRule WordValue();    // [a-z_-]* (status, action, server_state: set by pgherald itself)

// Renders `text`. Errors are kInvalidArgument and name `source` (a file name, for messages), the
// 1-based line and the culprit:
//   haproxy.cfg.tmpl:12: unknown variable "hots" (known: cluster, epoch, host, ...)
//   haproxy.cfg.tmpl:3: "{{" without a closing "}}"
//   haproxy.cfg.tmpl:3: bad variable name "a b" (expected letters, digits and _)
//   haproxy.cfg.tmpl:5: variable "host" is "127.0.0.1\x0aprogram x" (from the master record),
//       which is not a valid value: it must be <rule>; nothing rendered
// Every error in the text is reported, one per line of the message. Values are shown through
// untrusted::SanitizeForDisplay. A variable used but absent from `rules` may hold anything but a
// control character.
StatusOr<std::string> RenderTemplate(std::string_view text, const TemplateVars& vars,
                                     std::string_view source, const TemplateRules& rules = {});

// Reads the template at `path` (a regular file of at most kMaxTemplateFileBytes, through
// ReadBoundedFile: not /dev/zero, not a FIFO) and renders it. A file that cannot be read is
// kNotFound, one that is not a regular file or too large kInvalidArgument, each naming it.
StatusOr<std::string> RenderTemplateFile(const std::string& path, const TemplateVars& vars,
                                         const TemplateRules& rules = {});

}  // namespace pgherald
