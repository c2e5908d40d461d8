"""The targets of the performance issue, checked against a result, and the Markdown report."""

from __future__ import annotations

from typing import Any

from benchmarks import first_step, runtime_updates, sharded_save
from benchmarks.common import fmt, fmt_ms
from benchmarks.training import VARIANT_LABELS

MODEL_LABELS = {"small_mlp": "small MLP", "large_mlp": "large MLP"}


def _ratio_median(section: dict[str, Any], name: str, metric: str = "median_step") -> float | None:
    entry = section.get("ratios", {}).get(name)
    if entry is None:
        return None
    return (entry.get(metric) or entry).get("median")


def _target(name: str, value: float | bool | None, limit: str, met: bool | None, note: str = "") -> dict[str, Any]:
    return {"target": name, "value": value, "limit": limit, "met": met, "note": note}


def _le(value: float | None, limit: float) -> bool | None:
    return None if value is None else value <= limit


def evaluate_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Check every target of the issue that the result covers.

    Per-step ratios are the median over repetitions of each repetition's ratio of median wall-clock step
    times; the CPU-time ratio is given alongside as a note.
    """
    targets: list[dict[str, Any]] = []
    models = results.get("training", {}).get("models", {})
    for model, data in models.items():
        label = MODEL_LABELS.get(model, model)
        checks = [
            ("enhtrain/lightning_cli (5/3)", 1.00,
             f"{label}, separate processes: enhtrain defaults / LightningCLI defaults per step"),
            ("enhtrain/lightning_same (5/4)", 1.03,
             f"{label}, separate processes: enhtrain defaults / Lightning with the same loggers and callbacks"),
        ]
        if model == "large_mlp":
            checks.append(("enhtrain/vanilla (5/1)", 1.05,
                           f"{label}, separate processes: enhtrain / vanilla PyTorch per step"))
        if "monitors/csv_tb" in data.get("ratios", {}):
            checks.append(("monitors/csv_tb", 1.03, f"{label}, separate processes: csv+tensorboard+throughput+memory "
                           "/ Trainer with csv+tensorboard per step"))
        for ratio_name, limit, text in checks:
            value = _ratio_median(data, ratio_name)
            if value is None and ratio_name not in data.get("ratios", {}):
                continue
            cpu = _ratio_median(data, ratio_name, "cpu_median_step")
            p10 = _ratio_median(data, ratio_name, "p10_step")
            calls = _ratio_median(data, ratio_name, "calls_per_step")
            targets.append(_target(text, value, f"<= {limit:.2f}", _le(value, limit),
                                   f"p10-step ratio {fmt(p10)}, CPU-time ratio {fmt(cpu)}, calls-per-step ratio "
                                   f"{fmt(calls)}"))
        ttfs = data.get("ratios", {}).get("time_to_first_step enhtrain/lightning_cli")
        if ttfs:
            targets.append(_target(f"{label}: time to first step, enhtrain / LightningCLI", ttfs["median"],
                                   "<= 1.05", _le(ttfs["median"], 1.05)))
        if data.get("variants"):
            targets.append(_target(f"{label}: final losses of all variants agree", data.get("losses_agree"),
                                   "equal", bool(data.get("losses_agree"))))
    targets += _alternation_targets(results.get("alternation", {}).get("models", {}))
    startup = results.get("startup", {})
    info = startup.get("info_commands", {}).get("commands", {})
    for name, row in info.items():
        wall = row.get("wall_s")
        torch_imported = row["importtime"]["torch_imported"]
        targets.append(_target(f"`enhtrain {name}` wall time", wall, "< 0.30 s", None if wall is None else wall < 0.3))
        targets.append(_target(f"`enhtrain {name}` does not import torch (-X importtime)", not torch_imported,
                               "no torch", not torch_imported))
    if "fit_help" in startup:
        value = startup["fit_help"]["ratio"]["median"]
        targets.append(_target("`fit --help`, enhtrain / LightningCLI", value, "<= 1.05", _le(value, 1.05)))
    plugins = startup.get("plugin_discovery")
    if plugins:
        fake = plugins["cases"]["installed + 100 fake"]
        targets.append(_target("plugin discovery with 100 extra distributions", fake["discovery_s"], "<= 0.050 s",
                               _le(fake["discovery_s"], 0.050),
                               f"{fake['distributions']} distributions; "
                               f"fake plugin loaded: {fake['fake_plugin_loaded']}"))
        wall = plugins["enhtrain_plugins_wall_s"]["median"]
        targets.append(_target("`enhtrain plugins` with 100 extra distributions", wall, "< 0.50 s",
                               None if wall is None else wall < 0.5))
    for name, row in startup.get("lazy_imports", {}).items():
        others = ", ".join(row["other_component_modules"]) or "none"
        targets.append(_target(f"selecting `{name}` imports only its module", row["only_its_module"], "only its module",
                               row["only_its_module"], f"other component modules imported: {others}"))
    checkpoint = results.get("checkpoint")
    if checkpoint:
        value = checkpoint["ratios_to_lightning"]["enhtrain"]
        targets.append(_target(f"checkpoint save ({checkpoint['megabytes']} MiB), enhtrain / Lightning", value,
                               "<= 1.05", _le(value, 1.05)))
        share = checkpoint.get("metadata_manifest_share")
        if share is not None:
            targets.append(_target(f"checkpoint save ({checkpoint['megabytes']} MiB): what the metadata and the "
                                   "manifest add, timed within each save", 1.0 + share, "<= 1.05",
                                   _le(1.0 + share, 1.05),
                                   f"{fmt_ms(checkpoint['metadata_manifest_s'])} ms a save; interleaved saves with / "
                                   f"without them: {fmt(checkpoint.get('metadata_manifest_ratio'))}"))
    micro = results.get("micro_batching")
    if micro:
        targets.append(_target("peak memory follows micro_batch_size, not batch_size",
                               micro.get("memory_follows_micro_batch"), "yes", micro.get("memory_follows_micro_batch")))
    if results.get("runtime_updates"):
        targets.append(runtime_updates.target(results["runtime_updates"]))
    if results.get("sharded_save"):
        targets.append(sharded_save.target(results["sharded_save"]))
    if results.get("first_step"):
        targets.append(first_step.target(results["first_step"]))
    return targets


def _alternation_targets(models: dict[str, Any]) -> list[dict[str, Any]]:
    """The per-step targets again, on the ratios of runs alternated in one process."""
    targets = []
    checks = (
        ("enhtrain/lightning_cli (5/3)", 1.00, "enhtrain defaults / LightningCLI defaults per step"),
        ("enhtrain/lightning_same (5/4)", 1.03, "enhtrain defaults / Lightning with the same loggers and callbacks"),
        ("enhtrain/vanilla (5/1)", 1.05, "enhtrain / vanilla PyTorch per step"),
        ("monitors/csv_tb", 1.03, "csv+tensorboard+throughput+memory / Trainer with csv+tensorboard per step"),
    )
    for model, data in models.items():
        label = MODEL_LABELS.get(model, model)
        for ratio_name, limit, text in checks:
            entry = data.get("ratios", {}).get(ratio_name)
            if entry is None or (ratio_name == "enhtrain/vanilla (5/1)" and model != "large_mlp"):
                continue
            value = entry["median_step"]["median"]
            note = (f"{data['rounds']} rounds, range {_range(entry['median_step'])}; p10-step ratio "
                    f"{fmt(entry['p10_step']['median'])}")
            if ratio_name == "enhtrain/vanilla (5/1)":
                for other in ("lightning_bare/vanilla (2/1)", "enhtrain/lightning_bare (5/2)",
                              "bare_log_patched/vanilla (2'/1)"):
                    if other in data.get("ratios", {}):
                        note += f"; {other}: {fmt(data['ratios'][other]['median_step']['median'])}"
            targets.append(_target(f"{label}, one process: {text}", value, f"<= {limit:.2f}", _le(value, limit), note))
        targets.append(_target(f"{label}, one process: final losses agree", data.get("losses_agree"), "equal",
                               bool(data.get("losses_agree"))))
    return targets


def _mark(met: bool | None) -> str:
    return "n/a" if met is None else ("met" if met else "**missed**")


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return fmt(value)
    return "-" if value is None else str(value)


def _range(entry: dict[str, Any] | None) -> str:
    if not entry or entry.get("median") is None:
        return "-"
    if entry.get("n", 0) <= 1:
        return fmt(entry["median"])
    return f"{fmt(entry['median'])} ({fmt(entry['min'])}-{fmt(entry['max'])})"


def render(results: dict[str, Any]) -> str:
    """Render a result as Markdown: header, tables per measurement, and the targets."""
    settings = results["settings"]
    machine = results["machine"]
    lines = [
        f"# enhtrain benchmarks ({settings['mode']} mode, {results['finished']})",
        "",
        f"- Machine: {machine['cpu']}, {machine['logical_cpus']} logical CPUs, {machine['memory_gb']} GiB RAM; "
        f"{machine['os']}; Python {machine['python']}.",
        f"- GPU: {machine['gpu']}.",
        "- Versions: " + ", ".join(f"{k} {v}" for k, v in machine["versions"].items()) + ".",
        f"- Load average (1/5/15 min) at start: {results['load_start']}, at end: {results['load_end']}.",
        f"- Busiest other processes at start: {_busy(results.get('busy_start'))}.",
        f"- Torch intra-op threads in training processes: {settings['threads']}; repetitions: {settings['reps']}; "
        f"total time {results['elapsed_s']:.0f} s ("
        + ", ".join(f"{k} {v:.0f} s, load before {results.get('load_before_' + k)}"
                    for k, v in results.get("section_s", {}).items()) + ").",
        "",
    ]
    if results.get("errors"):
        lines += ["Errors: " + "; ".join(f"{k}: {v}" for k, v in results["errors"].items()), ""]
    training = results.get("training")
    if training:
        lines += _render_training(training)
    alternation = results.get("alternation")
    if alternation:
        lines += _render_alternation(alternation)
    startup = results.get("startup")
    if startup:
        lines += _render_startup(startup, results.get("training", {}))
    micro = results.get("micro_batching")
    if micro:
        lines += _render_micro(micro)
    checkpoint = results.get("checkpoint")
    if checkpoint:
        lines += _render_checkpoint(checkpoint)
    if results.get("runtime_updates"):
        lines += runtime_updates.render(results["runtime_updates"])
    if results.get("sharded_save"):
        lines += sharded_save.render(results["sharded_save"])
    if results.get("first_step"):
        lines += first_step.render(results["first_step"])
    lines += ["## Targets", "", "| Target | Value | Limit | Result | Note |", "|---|---|---|---|---|"]
    for row in results.get("targets", []):
        lines.append(
            f"| {row['target']} | {_value(row['value'])} | {row['limit']} | {_mark(row['met'])} | {row['note']} |"
        )
    return "\n".join(lines) + "\n"


def _busy(rows: list[dict[str, Any]] | None) -> str:
    if not rows:
        return "none measured"
    return "; ".join(f"`{' '.join(r['command'].split())[:60]}` ({r['cpu_percent']:.0f}% CPU)" for r in rows[:3])


def _render_training(training: dict[str, Any]) -> list[str]:
    lines = ["## Training overhead", ""]
    for model, data in training["models"].items():
        lines += [
            f"### {MODEL_LABELS.get(model, model)}: {data['description']}",
            "",
            f"{data['steps']} timed steps, the first {data['warmup']} left out, then "
            f"{data.get('count_steps', 0)} steps with their Python and C function calls counted; "
            f"{data['repetitions']} interleaved repetitions; "
            f"final losses agree: {'yes' if data['losses_agree'] else '**no**'}.",
            "",
        ]
        lines += _table(
            ["Variant", "Median step (ms)", "Mean step (ms)", "p10 step (ms)", "Median step CPU (ms)",
             "Calls per step", "Time to first step (s)", "Final loss"],
            [
                [VARIANT_LABELS.get(variant, variant), fmt_ms(row["median_step_s"]), fmt_ms(row["mean_step_s"]),
                 fmt_ms(row["p10_step_s"]), fmt_ms(row["cpu_median_step_s"]), fmt(row.get("calls_per_step"), 0),
                 fmt(row["time_to_first_step_s"], 2), "-" if row["final_loss"] is None else f"{row['final_loss']:.6f}"]
                for variant, row in data["variants"].items()
            ],
        )
        lines.append("")
        lines += _table(
            ["Ratio (median over repetitions, range)", "Median step", "Mean step", "p10 step", "Median step, CPU time",
             "Calls per step"],
            [
                [name, *(_range(entry.get(key)) for key in
                         ("median_step", "mean_step", "p10_step", "cpu_median_step", "calls_per_step"))]
                if "median_step" in entry
                else [name, _range(entry), "", "", "", ""]
                for name, entry in data["ratios"].items()
            ],
        )
        lines.append("")
    cost = training.get("empty_callback_cost")
    if cost:
        per = cost["per_callback"]
        lines += [
            f"One callback that overrides no hook, added to a bare `Trainer` ({cost['empty_callbacks']} of them, "
            f"{cost['repeats']} alternations in one process, small MLP, bare step {fmt_ms(cost['bare_p10_s'])} ms "
            f"at p10): {fmt(per['calls_per_step'], 0)} more calls per step and "
            f"{1e6 * per['p10_s']:.1f} µs per step at p10 ({1e6 * per['median_s']:.1f} µs at the median, "
            f"{1e6 * per['cpu_median_s']:.1f} µs in CPU time) per callback: Lightning calls every hook of every "
            "callback, each inside a profiler context.",
            "",
        ]
    return lines


def _render_startup(startup: dict[str, Any], training: dict[str, Any]) -> list[str]:
    lines = ["## Start-up", ""]
    info = startup.get("info_commands")
    if info:
        lines += [
            f"Interpreter start (`python -c pass`): {fmt(info['python_startup_s'])} s. Console script "
            f"`{info['console_script']}` works: {_value(info['console_script_works'])}"
            + (f" ({info['console_script_error']})" if info.get("console_script_error") else "") + ".",
            "",
            "| Command | Wall (s, median) | torch imported | lightning imported | modules imported |",
            "|---|---|---|---|---|",
        ]
        for name, row in info["commands"].items():
            it = row["importtime"]
            lines.append(
                f"| `enhtrain {name}` | {fmt(row['wall_s'])} | {_value(it['torch_imported'])} | "
                f"{_value(it['lightning_imported'])} | {it['modules']} |"
            )
        lines.append("")
    rows = []
    if "fit_help" in startup:
        fh = startup["fit_help"]
        rows.append(("`fit --help`", fh["wall_s"]["enhtrain"]["median"], fh["wall_s"]["lightning_cli"]["median"],
                     fh["ratio"]))
    cp = startup.get("config_parsing")
    if cp and "print_config_wall_s" in cp:
        rows.append(("`fit --config C --print_config`", cp["print_config_wall_s"]["enhtrain"]["median"],
                     cp["print_config_wall_s"]["lightning_cli"]["median"], cp["print_config_ratio"]))
    for model, data in training.get("models", {}).items():
        ttfs = data["ratios"].get("time_to_first_step enhtrain/lightning_cli")
        if ttfs:
            rows.append((f"time to first training step ({MODEL_LABELS.get(model, model)})",
                         data["variants"]["enhtrain"]["time_to_first_step_s"],
                         data["variants"]["lightning_cli"]["time_to_first_step_s"], ttfs))
    if rows:
        lines += ["| Measurement | enhtrain (s) | LightningCLI (s) | Ratio (median, range) |", "|---|---|---|---|"]
        for name, enh, cli, entry in rows:
            lines.append(f"| {name} | {fmt(enh)} | {fmt(cli)} | {_range(entry)} |")
        lines.append("")
    if cp:
        lines += ["enhtrain's own config step (`prepare_arguments`: layers, overlays, interpolation, validation):", "",
                  "| Command line | Cold (ms) | Warm (ms) |", "|---|---|---|"]
        for label, probe in cp["prepare_arguments"].items():
            lines.append(f"| {label} | {fmt_ms(probe['cold_s'])} | {fmt_ms(probe['warm_median_s'])} |")
        lines.append("")
    phases = startup.get("phases")
    if phases:
        lines += ["enhtrain's own start-up phases (fresh process each, wall time):", "",
                  "| Command | Phase | ms |", "|---|---|---|"]
        for label, probe in phases.items():
            for name, seconds in probe["phases_s"].items():
                lines.append(f"| `{label}` | {name} | {fmt_ms(seconds)} |")
            lines.append(f"| `{label}` | **total** | {fmt_ms(probe['enhtrain_total_s'])} |")
            if probe.get("main_to_first_step_s") is not None:
                lines.append(f"| `{label}` | (from `main()` to the first step, everything) | "
                             f"{fmt_ms(probe['main_to_first_step_s'])} |")
        lines.append("")
    pd = startup.get("plugin_discovery")
    if pd:
        lines += ["Plugin discovery (fresh process, median):", "",
                  "| Installed | Distributions | import enhtrain.plugins (ms) | discovery + registry (ms) | "
                  "list (ms) |", "|---|---|---|---|---|"]
        for name, case in pd["cases"].items():
            lines.append(f"| {name} | {case['distributions']} | {fmt_ms(case['import_s'])} | "
                         f"{fmt_ms(case['discovery_s'])} | {fmt_ms(case['list_s'])} |")
        lines += ["", f"`python -m enhtrain plugins` with the 100 extra distributions: "
                  f"{fmt(pd['enhtrain_plugins_wall_s']['median'])} s (fake plugin listed: "
                  f"{_value(pd['enhtrain_plugins_lists_fake_plugin'])}).", ""]
    lazy = startup.get("lazy_imports")
    if lazy:
        lines += ["| Selected by name | Its module | Other component modules imported | Heavy libraries imported |",
                  "|---|---|---|---|"]
        for name, row in lazy.items():
            lines.append(f"| `{name}` | `{row['module']}` | {', '.join(row['other_component_modules']) or 'none'} | "
                         f"{', '.join(row['heavy_libraries']) or 'none'} |")
        lines.append("")
    return lines


def _render_micro(micro: dict[str, Any]) -> list[str]:
    model = micro["model"]
    lines = [
        "## Micro-batching",
        "",
        f"`MLPClassifier` {model['input_dim']}-{'-'.join(map(str, model['hidden_dims']))}-{model['num_classes']}, "
        f"effective batch {micro['batch_size']}, {micro['steps']} optimizer steps after {micro['warmup']} warm-up.",
        "",
        "| Optimisation | Loader batch | Accumulation | Samples/s (median) |",
        "|---|---|---|---|",
    ]
    for key, runs in micro["throughput"].items():
        rates = sorted(r["samples_per_s"] for r in runs if r["samples_per_s"])
        rate = rates[len(rates) // 2] if rates else None
        first = runs[0]
        lines.append(f"| {key} (micro-batch {first['micro_batch_size']}) | {first['loader_batch_size']} | "
                     f"{first['accumulate_grad_batches']} | {fmt(rate, 0)} |")
    lines += ["", f"Manual / automatic samples per second: {fmt(micro['manual_over_automatic_samples_per_s'])}.", "",
              "| Optimisation | micro_batch_size | Peak RSS increase during steps (MiB) |", "|---|---|---|"]
    for row in micro["memory"]:
        peak = row["peak_rss_increase"]
        lines.append(f"| {'manual' if row['manual'] else 'automatic'} | {row['micro_batch_size']} | "
                     f"{'-' if peak is None else f'{peak / 2**20:.2f}'} |")
    lines.append("")
    return lines


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A Markdown table."""
    return [f"| {' | '.join(header)} |", "|" + "---|" * len(header), *(f"| {' | '.join(row)} |" for row in rows)]


def _render_alternation(alternation: dict[str, Any]) -> list[str]:
    lines = ["## Training overhead, variants alternated in one process", ""]
    for model, data in alternation["models"].items():
        lines += [
            f"### {MODEL_LABELS.get(model, model)}",
            "",
            f"{data['rounds']} rounds of {data['steps']} steps per variant, after a warm-up round; "
            f"final losses agree: {'yes' if data['losses_agree'] else '**no**'}.",
            "",
        ]
        lines += _table(
            ["Variant", "Median step (ms)", "Mean step (ms)", "p10 step (ms)", "Final loss"],
            [
                [VARIANT_LABELS.get(variant, variant), fmt_ms(row["median_step_s"]), fmt_ms(row["mean_step_s"]),
                 fmt_ms(row["p10_step_s"]), "-" if row["final_loss"] is None else f"{row['final_loss']:.6f}"]
                for variant, row in data["variants"].items()
            ],
        )
        lines.append("")
        lines += _table(
            ["Ratio (median over rounds, range)", "Median step", "Mean step", "p10 step"],
            [[name, *(_range(entry[key]) for key in ("median_step", "mean_step", "p10_step"))]
             for name, entry in data["ratios"].items()],
        )
        lines.append("")
    return lines


def _render_checkpoint(ck: dict[str, Any]) -> list[str]:
    lines = [
        "## Checkpoint save",
        "",
        f"{ck['megabytes']} MiB of tensors ({ck['file_bytes'] / 2**20:.1f} MiB file), {ck['repeats']} interleaved "
        "repetitions, `os.sync()` before each save.",
        "",
        "| Variant | Median (ms) | Ratio to Lightning (median) |",
        "|---|---|---|",
    ]
    labels = {
        "lightning": "Lightning `TorchCheckpointIO.save_checkpoint`",
        "enhtrain": "enhtrain `AtomicCheckpointIO` + metadata + manifest",
        "enhtrain_no_metadata": "enhtrain `AtomicCheckpointIO` alone (sha256, no metadata, no manifest)",
        "atomic_no_hash": "`torch.save` to a temp file, fsync, rename (no sha256)",
        "enhtrain_no_fsync": "enhtrain with `os.fsync` a no-op",
        "torch_save_tmp_rename": "`torch.save` to a temp file + rename",
    }
    for name, value in ck["median_s"].items():
        lines.append(f"| {labels.get(name, name)} | {fmt_ms(value)} | "
                     f"{fmt(ck['ratios_to_lightning'].get(name, 1.0))} |")
    if ck.get("fsync_median_s"):
        each = ", ".join(fmt_ms(t) for t in ck["fsync_median_s"])
        lines += ["", f"enhtrain's save makes {ck['fsync_calls_per_save']} `fsync` calls (checkpoint file, its "
                  f"directory, `manifest.json`, its directory): {each} ms (medians), "
                  f"{fmt_ms(ck['fsync_total_median_s'])} ms in all."]
    if ck.get("metadata_manifest_ratio") is not None:
        lines += ["", f"Metadata and manifest (enhtrain / `AtomicCheckpointIO` alone): "
                  f"{fmt(ck['metadata_manifest_ratio'])}; sha256 while writing (`AtomicCheckpointIO` alone / "
                  f"no sha256): {fmt(ck['hash_ratio'])}."]
    if ck.get("metadata_manifest_s") is not None:
        lines += ["", f"Timed within each enhtrain save, the metadata and the manifest update take "
                  f"{fmt_ms(ck['metadata_manifest_s'])} ms: {100 * ck['metadata_manifest_share']:.1f} % of the save."]
    lines.append("")
    return lines
