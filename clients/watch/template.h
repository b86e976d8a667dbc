// A tiny {{variable}} template language for the files `pgherald watch` renders (HAProxy's config,
// pgbouncer's [databases] file). Deliberately minimal: no loops, no conditionals, no escaping.
//
//   backend pg_primary
//       server primary {{host}}:{{port}} check {{server_state}}
//
// Rules: `{{ name }}` (spaces inside the braces allowed) is replaced by the variable's value; a name
// is [A-Za-z0-9_]+. Every other byte is copied as is. There is no escape for a literal "{{".
#pragma once

#include <map>
#include <string>
#include <string_view>

#include "common/status.h"

namespace pgherald::watch {

using TemplateVars = std::map<std::string, std::string>;

// Renders `text`. Errors are kInvalidArgument and name `source` (a file name, for messages), the
// 1-based line and the culprit:
//   haproxy.cfg.tmpl:12: unknown variable "hots" (known: cluster, epoch, host, ...)
//   haproxy.cfg.tmpl:3: "{{" without a closing "}}"
//   haproxy.cfg.tmpl:3: bad variable name "a b" (expected letters, digits and _)
// Every error in the text is reported, one per line of the message.
StatusOr<std::string> RenderTemplate(std::string_view text, const TemplateVars& vars,
                                     std::string_view source);

// Reads the file at `path` and renders it; a file that cannot be read is kNotFound naming it, one
// that is not a regular file or is over kMaxTemplateFileBytes (1 MiB) kInvalidArgument naming it.
StatusOr<std::string> RenderTemplateFile(const std::string& path, const TemplateVars& vars);

}  // namespace pgherald::watch
