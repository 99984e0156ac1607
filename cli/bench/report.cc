#include "cli/bench/report.h"

#include <sys/stat.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <sstream>

#include "cli/bench/child_process.h"
#include "cli/bench/stats.h"

namespace microvm::bench {

namespace {

using nlohmann::json;

// A guest-mode scenario on a host that emulates guest kernel mode measures the emulator:
// a baseline/microvm ratio there says nothing about either VMM, so none is printed.
bool ratios_meaningful(const BenchResults& r, const ScenarioResult& sc) {
  return !(sc.guest_speed_bound && r.probe && r.probe->emulated);
}
constexpr char kEmulatedNote[] =
    "This host emulates guest kernel mode (see the host probe): these guest-mode numbers measure the host's "
    "instruction emulator, not the VMM, so no ratios are given. Use --device-only here, or rerun on a host with "
    "hardware virtualization.";
constexpr char kNoRatio[] = "n/a (emulated)";

std::optional<double> ratio(const MetricResult& m, const std::string& baseline) {
  auto a = m.samples.find("microvm"), b = m.samples.find(baseline);
  if (a == m.samples.end() || b == m.samples.end() || a->second.empty() || b->second.empty()) return std::nullopt;
  double ma = summarize(a->second).median, mb = summarize(b->second).median;
  if (ma == 0) return std::nullopt;
  return mb / ma;
}

std::string cell(const MetricResult& m, const std::string& variant) {
  auto it = m.samples.find(variant);
  if (it == m.samples.end() || it->second.empty()) return "–";
  Summary s = summarize(it->second);
  if (s.n == 1) return format_number(s.median);
  return format_number(s.median) + " (" + format_number(s.min) + "–" + format_number(s.max) + ")";
}

std::string ratio_cell(const MetricResult& m, const std::string& baseline) {
  auto r = ratio(m, baseline);
  if (!r) return "–";
  return format_number(*r) + "×";
}

std::string safe_file_name(std::string s) {
  for (char& c : s)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-') c = '_';
  return s;
}

Result<void> make_dir(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return fail(ec.value(), "mkdir " + dir + ": " + ec.message());
  return {};
}

// One bar per variant at its median, with a min–max error bar.
Result<std::string> write_chart(const ScenarioResult& sc, const MetricResult& m, const std::string& dir,
                                const std::string& gnuplot) {
  std::string base = safe_file_name(sc.name + "_" + m.name);
  std::ostringstream gp;
  gp << "set terminal pngcairo noenhanced size 720,420 font 'sans,10'\n"
     << "set output '" << dir << "/" << base << ".png'\n"
     << "set title \"" << sc.name << ": " << m.name << " (median, min–max)\"\n"
     << "set ylabel \"" << m.unit << (m.lower_is_better ? " (lower is better)" : " (higher is better)") << "\"\n"
     << "set yrange [0:*]\nset xrange [-0.6:" << sc.variants.size() - 0.4 << "]\n"
     << "set boxwidth 0.5\nset style fill solid 0.6 border -1\nset grid ytics\nunset key\n"
     << "$data << EOD\n";
  int idx = 0;
  std::string xtics;
  for (const auto& v : sc.variants) {
    auto it = m.samples.find(v);
    if (it != m.samples.end() && !it->second.empty()) {
      Summary s = summarize(it->second);
      gp << idx << " " << s.median << " " << s.min << " " << s.max << " \"" << format_number(s.median) << "\"\n";
    }
    xtics += (xtics.empty() ? "" : ", ") + ("\"" + v + "\" " + std::to_string(idx));
    ++idx;
  }
  gp << "EOD\nset xtics (" << xtics << ")\n"
     << "plot $data using 1:2 with boxes lc rgb '#4a90d9', "
     << "'' using 1:2:3:4 with yerrorbars lc rgb 'black' pt 0, "
     << "'' using 1:2:5 with labels offset 0,1\n";
  std::string script = dir + "/" + base + ".gp";
  TRY(write_file(script, gp.str()));
  auto child = TRY(ChildProcess::spawn({gnuplot, script}, {"", dir + "/" + base + ".gnuplot.log"}));
  if (!child.wait_for(std::chrono::seconds(60))) return fail("gnuplot did not finish in 60 s");
  if (exit_code_of(*child.status()) != 0)
    return fail("gnuplot " + script + ": " + describe_status(*child.status()) + ": " +
                read_file(dir + "/" + base + ".gnuplot.log").value_or(""));
  std::remove((dir + "/" + base + ".gnuplot.log").c_str());
  return base + ".png";
}

}  // namespace

std::string format_number(double v) {
  char buf[64];
  double a = std::fabs(v);
  if (a >= 100 || a == 0)
    std::snprintf(buf, sizeof buf, "%.0f", v);
  else if (a >= 10)
    std::snprintf(buf, sizeof buf, "%.1f", v);
  else if (a >= 1)
    std::snprintf(buf, sizeof buf, "%.2f", v);
  else
    std::snprintf(buf, sizeof buf, "%.3g", v);
  return buf;
}

json to_json(const BenchResults& r) {
  json j;
  j["tool"] = "microvm bench";
  j["format_version"] = 1;
  const Conditions& c = r.conditions;
  j["conditions"] = {{"date_utc", c.date_utc},
                     {"cpu_model", c.cpu_model},
                     {"host_kernel", c.host_kernel},
                     {"host_cpus", c.host_cpus},
                     {"host_memory_gib", c.host_memory_gib},
                     {"loadavg_before", c.loadavg_before},
                     {"loadavg_after", c.loadavg_after},
                     {"guest_memory_mib", c.guest_memory_mib},
                     {"guest_cpus", c.guest_cpus},
                     {"repetitions", c.repetitions},
                     {"microvm_binary", c.microvm_binary},
                     {"source_revision", c.source_revision},
                     {"qemu_version", c.qemu_version},
                     {"kernel", c.kernel}};
  if (r.probe) {
    const auto& p = *r.probe;
    j["host_probe"] = {{"guest_kernel_mode_emulated", p.emulated}, {"guest_cpl0_loop_tsc", p.guest_loop_tsc},
                       {"host_loop_tsc", p.host_loop_tsc},         {"slowdown", p.slowdown},
                       {"guest_cpl0_mips", p.guest_cpl0_mips},     {"verdict", p.verdict}};
  } else {
    j["host_probe"] = {{"error", r.probe_error}};
  }
  j["scenarios"] = json::array();
  for (const auto& sc : r.scenarios) {
    json s;
    s["name"] = sc.name;
    s["description"] = sc.description;
    s["variants"] = sc.variants;
    s["notes"] = sc.notes;
    if (!sc.prepare_error.empty()) s["prepare_error"] = sc.prepare_error;
    s["mode"] = sc.guest_mode ? "guest" : "device";
    bool with_ratios = ratios_meaningful(r, sc);
    s["measures_emulator"] = !with_ratios;
    if (!with_ratios) s["notes"].push_back(kEmulatedNote);
    s["metrics"] = json::array();
    for (const auto& m : sc.metrics) {
      json jm;
      jm["name"] = m.name;
      jm["unit"] = m.unit;
      jm["description"] = m.description;
      jm["lower_is_better"] = m.lower_is_better;
      jm["results"] = json::object();
      for (const auto& [variant, samples] : m.samples) {
        Summary st = summarize(samples);
        jm["results"][variant] = {
            {"n", st.n}, {"median", st.median}, {"min", st.min}, {"max", st.max}, {"samples", samples}};
      }
      jm["ratio_baseline_over_microvm"] = json::object();
      if (with_ratios)
        for (const auto& v : sc.variants)
          if (v != "microvm")
            if (auto q = ratio(m, v)) jm["ratio_baseline_over_microvm"][v] = *q;
      s["metrics"].push_back(jm);
    }
    s["runs"] = json::array();
    for (const auto& run : sc.runs) {
      json jr = {{"variant", run.variant}, {"repetition", run.repetition}, {"ok", run.ok}};
      if (!run.error.empty()) jr["error"] = run.error;
      jr["metrics"] = run.metrics;
      jr["details"] = run.details;
      s["runs"].push_back(jr);
    }
    j["scenarios"].push_back(s);
  }
  return j;
}

std::string format_table(const BenchResults& r) {
  std::ostringstream o;
  if (r.probe)
    o << "host: " << r.probe->verdict << "\n";
  else
    o << "host: kernel-mode probe failed: " << r.probe_error << "\n";
  for (const auto& sc : r.scenarios) {
    o << "\n== " << sc.name << ": " << sc.description << "\n";
    if (!sc.prepare_error.empty()) o << "   prepare failed: " << sc.prepare_error << "\n";
    bool with_ratios = ratios_meaningful(r, sc);
    if (!with_ratios) o << "  !! " << kEmulatedNote << "\n";
    // Column widths from the content.
    std::vector<std::vector<std::string>> rows;
    std::vector<std::string> head = {"metric"};
    for (const auto& v : sc.variants) head.push_back(v + " median (min–max)");
    for (const auto& v : sc.variants)
      if (v != "microvm") head.push_back(v + "/microvm");
    rows.push_back(head);
    for (const auto& m : sc.metrics) {
      std::vector<std::string> row = {m.name + " [" + m.unit + "]"};
      for (const auto& v : sc.variants) row.push_back(cell(m, v));
      for (const auto& v : sc.variants)
        if (v != "microvm") row.push_back(with_ratios ? ratio_cell(m, v) : kNoRatio);
      rows.push_back(row);
    }
    std::vector<size_t> w(head.size(), 0);
    for (const auto& row : rows)
      for (size_t i = 0; i < row.size(); ++i) {
        // Count UTF-8 code points ("–", "×") as one column each.
        size_t len = 0;
        for (unsigned char ch : row[i]) len += (ch & 0xc0) != 0x80;
        w[i] = std::max(w[i], len);
      }
    for (const auto& row : rows) {
      o << "  ";
      for (size_t i = 0; i < row.size(); ++i) {
        size_t len = 0;
        for (unsigned char ch : row[i]) len += (ch & 0xc0) != 0x80;
        o << row[i] << std::string(w[i] - len + 2, ' ');
      }
      o << "\n";
    }
    size_t failed = 0;
    for (const auto& run : sc.runs) failed += !run.ok;
    if (failed) {
      o << "  " << failed << " run(s) failed; first: ";
      for (const auto& run : sc.runs)
        if (!run.ok) {
          o << run.variant << ": " << run.error << "\n";
          break;
        }
    }
    for (const auto& n : sc.notes) o << "  note: " << n << "\n";
  }
  return o.str();
}

std::string format_markdown(const BenchResults& r, const std::map<std::string, std::string>& charts) {
  std::ostringstream o;
  const Conditions& c = r.conditions;
  o << "# microvm bench report\n\n"
    << "## Conditions\n\n"
    << "| | |\n|---|---|\n"
    << "| date (UTC) | " << c.date_utc << " |\n"
    << "| CPU | " << c.cpu_model << " (" << c.host_cpus << " CPUs visible) |\n"
    << "| host kernel | " << c.host_kernel << " |\n"
    << "| host memory | " << format_number(c.host_memory_gib) << " GiB |\n"
    << "| load average before / after | " << c.loadavg_before << " / " << c.loadavg_after << " |\n"
    << "| guest | " << c.guest_cpus << " vCPU, " << c.guest_memory_mib << " MiB, kernel " << c.kernel << " |\n"
    << "| repetitions | " << c.repetitions << " per variant, variants alternating |\n"
    << "| microvm | " << c.microvm_binary << " (source " << c.source_revision << ") |\n"
    << "| QEMU | " << c.qemu_version << " |\n\n";
  o << "## Host probe\n\n";
  if (r.probe)
    o << r.probe->verdict << " (guest loop " << r.probe->guest_loop_tsc << " TSC ticks, host " << r.probe->host_loop_tsc
      << ").\n\n";
  else
    o << "The kernel-mode probe failed: " << r.probe_error << "\n\n";
  for (const auto& sc : r.scenarios) {
    o << "## Scenario `" << sc.name << "`\n\n" << sc.description << "\n\n";
    if (!sc.prepare_error.empty()) o << "**Prepare failed:** " << sc.prepare_error << "\n\n";
    bool with_ratios = ratios_meaningful(r, sc);
    if (!with_ratios) o << "**" << kEmulatedNote << "**\n\n";
    o << "| metric | unit |";
    for (const auto& v : sc.variants) o << " " << v << " median (min–max) |";
    for (const auto& v : sc.variants)
      if (v != "microvm") o << " " << v << " ÷ microvm |";
    o << "\n|---|---|";
    for (size_t i = 0; i < sc.variants.size() * 2 - 1; ++i) o << "---|";
    o << "\n";
    for (const auto& m : sc.metrics) {
      o << "| " << m.name << " | " << m.unit << " |";
      for (const auto& v : sc.variants) o << " " << cell(m, v) << " |";
      for (const auto& v : sc.variants)
        if (v != "microvm") o << " " << (with_ratios ? ratio_cell(m, v) : kNoRatio) << " |";
      o << "\n";
    }
    o << "\n";
    for (const auto& m : sc.metrics) o << "- `" << m.name << "`: " << m.description << "\n";
    o << "\n";
    for (const auto& n : sc.notes) o << "> " << n << "\n>\n";
    o << "\n";
    for (const auto& m : sc.metrics) {
      auto it = charts.find(sc.name + "/" + m.name);
      if (it != charts.end()) o << "![" << sc.name << " " << m.name << "](" << it->second << ")\n";
    }
    size_t failed = 0;
    for (const auto& run : sc.runs) failed += !run.ok;
    if (failed) {
      o << "\n**" << failed << " run(s) failed:**\n\n";
      for (const auto& run : sc.runs)
        if (!run.ok) o << "- " << run.variant << " #" << run.repetition << ": " << run.error << "\n";
    }
    o << "\n";
  }
  return o.str();
}

Result<void> write_report(const BenchResults& r, const std::string& dir, const std::string& gnuplot) {
  TRY(make_dir(dir));
  std::map<std::string, std::string> charts;
  std::vector<std::string> chart_errors;
  for (const auto& sc : r.scenarios)
    for (const auto& m : sc.metrics) {
      auto png = write_chart(sc, m, dir, gnuplot);
      if (png)
        charts[sc.name + "/" + m.name] = *png;
      else
        chart_errors.push_back(png.error().what);
    }
  TRY(write_file(dir + "/results.json", to_json(r).dump(2) + "\n"));
  std::string md = format_markdown(r, charts);
  for (const auto& e : chart_errors) md += "\nChart not drawn: " + e + "\n";
  TRY(write_file(dir + "/report.md", md));
  if (!chart_errors.empty()) return fail("charts: " + chart_errors.front());
  return {};
}

}  // namespace microvm::bench
