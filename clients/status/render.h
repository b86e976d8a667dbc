// `pgherald status|history`'s output: the cluster view (publishers/view/cluster_view.h) rendered
// for people (aligned text tables) and machines (the view's JSON, serialized), and the exit codes.
// Pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "publishers/view/cluster_view.h"

namespace pgherald::status {

// `pgherald status`'s exit codes (documented in docs/operations.md).
inline constexpr int kExitHealthy = 0;    // every cluster has a verified master, no node problem
inline constexpr int kExitUnhealthy = 1;  // a cluster has no verified master, or a node problem
inline constexpr int kExitUsage = 2;      // bad flags or config
inline constexpr int kExitZooKeeper = 3;  // ZooKeeper unreachable or a read failed
inline constexpr int kExitNotFound = 4;   // the named cluster (or the root) does not exist

int ExitCodeFor(const std::vector<view::ClusterStatus>& clusters);

// "2026-11-22T04:31:05.123Z"; "-" for 0.
std::string FormatWallMs(std::int64_t ms);
// "850ms", "12.3s", "4m05s", "-" for a negative age.
std::string FormatAge(std::int64_t ms);

// The status line of the cluster's switchover record ("" when there is none): "<id> <from> ->
// <to> phase <p> since <t> (deadline <t>)" while active; "... EXPIRED at <t> ..." past its
// deadline unfinished; "last <id> <from> -> <to> <done|aborted|failed> at <t>[: error]" once over.
std::string SwitchoverLine(const view::ClusterStatus& cluster);

// One block per cluster: a header line (master, vouchers, paused, switchover) and an aligned node
// table, then the problems.
std::string RenderStatusTable(const std::vector<view::ClusterStatus>& clusters);
// view::StatusJson, one line: {"clusters":[...],"healthy":bool} (see docs/operations.md).
std::string RenderStatusJson(const std::vector<view::ClusterStatus>& clusters);

// The decision log, oldest first: one block per entry with reasons, evidence and data loss.
std::string RenderHistoryText(const std::string& cluster,
                              const std::vector<model::HistoryEntry>& history);
// view::HistoryJson, one line: {"cluster":c,"history":[<HistoryEntry payloads>]}
std::string RenderHistoryJson(const std::string& cluster,
                              const std::vector<model::HistoryEntry>& history);

// Left-aligned columns separated by two spaces; rows shorter than the header are padded.
std::string AlignTable(const std::vector<std::vector<std::string>>& rows);

}  // namespace pgherald::status
