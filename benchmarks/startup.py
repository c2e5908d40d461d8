"""Start-up: info commands, ``fit --help``, config parsing, plugin discovery and lazy component imports.

Wall times are of whole processes (interpreter start included), taken interleaved with their reference.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import yaml

from benchmarks.common import (
    REPO,
    Settings,
    median,
    python,
    ratio,
    rotate,
    run_process,
    subprocess_env,
    summary,
)

INFO_COMMANDS = (("--version",), ("plugins",), ("templates", "list"))
FAKE_DISTRIBUTIONS = 100
LAZY_COMPONENTS = (("loggers", "csv"), ("loggers", "tensorboard"), ("callbacks", "throughput"),
                   ("callbacks", "memory"), ("callbacks", "run_summary"))


def parse_importtime(stderr: str) -> dict[str, Any]:
    """Summarise the output of ``python -X importtime``.

    Returns:
        ``modules`` (count), ``total_self_s`` (the sum of every module's own import time), whether ``torch``
        and ``lightning`` were imported, and the five slowest top-level imports (cumulative).
    """
    modules: list[tuple[str, int, int]] = []
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        parts = [p.strip() for p in line[len("import time:"):].split("|")]
        if len(parts) != 3 or not parts[0].isdigit():
            continue
        modules.append((parts[2], int(parts[0]), int(parts[1])))
    names = [name.strip() for name, _, _ in modules]
    top = sorted(
        ((name.strip(), cumulative) for name, _, cumulative in modules if not name.startswith(" ")),
        key=lambda item: -item[1],
    )[:5]
    return {
        "modules": len(modules),
        "total_self_s": sum(self_us for _, self_us, _ in modules) / 1e6,
        "torch_imported": any(n == "torch" or n.startswith("torch.") for n in names),
        "lightning_imported": any(n == "lightning" or n.startswith("lightning.") for n in names),
        "slowest_top_level": [{"module": n, "cumulative_s": us / 1e6} for n, us in top],
    }


def console_script() -> str | None:
    """The ``enhtrain`` console script next to the interpreter, if installed."""
    candidate = Path(python()).with_name("enhtrain")
    return str(candidate) if candidate.is_file() else shutil.which("enhtrain")


def info_commands(settings: Settings, workdir: Path) -> dict[str, Any]:
    """Wall time of ``enhtrain --version``, ``plugins`` and ``templates list``, and whether they import torch."""
    env = subprocess_env()
    script = console_script()
    script_ok = None
    script_error = None
    if script is not None:
        check = run_process([script, "--version"], cwd=workdir, env=env)
        script_ok = check.returncode == 0
        if not script_ok:
            script_error = (check.stderr.strip().splitlines() or ["?"])[-1]
    forms = {"python -m enhtrain": [python(), "-m", "enhtrain"]}
    if script_ok:
        forms["enhtrain"] = [script]  # type: ignore[list-item]
    baseline = [run_process([python(), "-c", "pass"], cwd=workdir, env=env).wall_s
                for _ in range(settings.startup_reps)]
    out: dict[str, Any] = {
        "python_startup_s": median(baseline),
        "console_script": script,
        "console_script_works": script_ok,
        "console_script_error": script_error,
        "commands": {},
    }
    for cmd in INFO_COMMANDS:
        name = " ".join(cmd)
        row: dict[str, Any] = {}
        for form, prefix in forms.items():
            times = []
            for _ in range(settings.startup_reps):
                result = run_process([*prefix, *cmd], cwd=workdir, env=env).check(f"{form} {name}")
                times.append(result.wall_s)
            row[form] = summary(times)
        traced = run_process([python(), "-X", "importtime", "-m", "enhtrain", *cmd], cwd=workdir, env=env)
        row["importtime"] = parse_importtime(traced.check(f"python -X importtime -m enhtrain {name}").stderr)
        row["wall_s"] = row.get("enhtrain", row["python -m enhtrain"])["median"]
        out["commands"][name] = row
    return out


def fit_help(settings: Settings, workdir: Path) -> dict[str, Any]:
    """``python -m enhtrain fit --help`` against a bare ``LightningCLI`` script's ``fit --help``, interleaved."""
    env = subprocess_env()
    commands = {
        "enhtrain": [python(), "-m", "enhtrain", "fit", "--help"],
        "lightning_cli": [python(), "-m", "benchmarks.lightning_cli", "fit", "--help"],
    }
    times: dict[str, list[float]] = {k: [] for k in commands}
    for rep in range(settings.startup_reps):
        for name in rotate(list(commands), rep):
            times[name].append(run_process(commands[name], cwd=workdir, env=env).check(f"{name} fit --help").wall_s)
    ratios = [ratio(e, c) for e, c in zip(times["enhtrain"], times["lightning_cli"], strict=True)]
    return {"wall_s": {k: summary(v) for k, v in times.items()}, "ratio": summary(ratios)}


def config_parsing(settings: Settings, workdir: Path, config: Path) -> dict[str, Any]:
    """Config parsing: enhtrain's composition step in-process and, in the full mode, ``--print_config`` against
    ``LightningCLI``.

    Args:
        settings: Repetitions.
        workdir: Scratch directory.
        config: A config without an ``experiment`` section, which both CLIs accept.
    """
    env = subprocess_env()
    probes = {}
    cases = {
        "training config (1 file)": ["fit", "--config", str(config)],
        "configs/digits.yaml (extends 5 files) + --env dev + flag": [
            "fit", "--config", str(REPO / "configs" / "digits.yaml"), "--env", "dev", "--trainer.max_epochs", "3",
        ],
    }
    for label, argv in cases.items():
        out = workdir / f"parse-{len(probes)}.json"
        run_process([python(), "-m", "benchmarks.probes", "--out", str(out), "parse", *argv], cwd=workdir,
                    env=env).check(f"parse probe {label}")
        probes[label] = json.loads(out.read_text(encoding="utf-8"))
    if settings.mode != "full":
        return {"prepare_arguments": probes}
    commands = {
        "enhtrain": [python(), "-m", "enhtrain", "fit", "--config", str(config), "--print_config"],
        "lightning_cli": [python(), "-m", "benchmarks.lightning_cli", "fit", "--config", str(config), "--print_config"],
    }
    times: dict[str, list[float]] = {k: [] for k in commands}
    for rep in range(settings.startup_reps):
        for name in rotate(list(commands), rep):
            times[name].append(run_process(commands[name], cwd=workdir, env=env).check(f"{name} print_config").wall_s)
    ratios = [ratio(e, c) for e, c in zip(times["enhtrain"], times["lightning_cli"], strict=True)]
    return {
        "prepare_arguments": probes,
        "print_config_wall_s": {k: summary(v) for k, v in times.items()},
        "print_config_ratio": summary(ratios),
    }


def make_fake_site(root: Path, count: int = FAKE_DISTRIBUTIONS, enhtrain_plugins: int = 1) -> Path:
    """Create ``count`` installed-looking distributions with entry points, ``enhtrain_plugins`` of them plugins.

    Args:
        root: The directory to put on ``sys.path``.
        count: Number of ``*.dist-info`` directories.
        enhtrain_plugins: How many of them declare an entry point in the ``enhtrain`` group.
    """
    root.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        name = f"bench_fake_dist_{i:03d}"
        info = root / f"{name}-1.0.dist-info"
        info.mkdir(exist_ok=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n", encoding="utf-8")
        (info / "RECORD").write_text("", encoding="utf-8")
        entry_points = f"[console_scripts]\n{name} = {name}:main\n\n[bench.fake]\nitem = {name}:item\n"
        if i < enhtrain_plugins:
            module = f"bench_fake_plugin_{i}"
            entry_points += f"\n[enhtrain]\nbench_fake_{i} = {module}\n"
            (root / f"{module}.py").write_text(
                "from enhtrain import hookimpl\n\n\n@hookimpl\ndef enhtrain_register_callbacks(registry):\n"
                f"    registry.register('{module}:FakeCallback', name='bench_fake_callback_{i}')\n",
                encoding="utf-8",
            )
        (info / "entry_points.txt").write_text(entry_points, encoding="utf-8")
    return root


def plugin_discovery(settings: Settings, workdir: Path) -> dict[str, Any]:
    """Plugin discovery with and without 100 extra distributions, and ``enhtrain plugins`` with them."""
    site = make_fake_site(workdir / "fake-site")
    envs = {"installed": subprocess_env(), "installed + 100 fake": subprocess_env(extra_path=[str(site)])}
    probes: dict[str, list[dict[str, Any]]] = {k: [] for k in envs}
    for rep in range(max(3, settings.startup_reps)):
        for name in rotate(list(envs), rep):
            out = workdir / f"plugins-{rep}-{len(probes[name])}-{name.replace(' ', '_')}.json"
            run_process([python(), "-m", "benchmarks.probes", "--out", str(out), "plugins"], cwd=workdir,
                        env=envs[name]).check("plugins probe")
            probes[name].append(json.loads(out.read_text(encoding="utf-8")))
    result: dict[str, Any] = {"fake_distributions": FAKE_DISTRIBUTIONS, "cases": {}}
    for name, runs in probes.items():
        result["cases"][name] = {
            "distributions": runs[-1]["distributions"],
            "import_s": median(r["import_s"] for r in runs),
            "discovery_s": median(r["registry_s"] for r in runs),
            "list_s": median(r["list_s"] for r in runs),
            "plugins": runs[-1]["plugins"],
            "failures": runs[-1]["failures"],
            "torch_imported": runs[-1]["torch_imported"],
        }
    fake = result["cases"]["installed + 100 fake"]
    fake["fake_plugin_loaded"] = "bench_fake_0" in fake["plugins"]
    times = []
    listed = False
    for _ in range(settings.startup_reps):
        run = run_process([python(), "-m", "enhtrain", "plugins"], cwd=workdir,
                          env=envs["installed + 100 fake"]).check("enhtrain plugins")
        times.append(run.wall_s)
        listed = "bench_fake_0" in run.stdout
    result["enhtrain_plugins_wall_s"] = summary(times)
    result["enhtrain_plugins_lists_fake_plugin"] = listed
    return result


def lazy_imports(settings: Settings, workdir: Path) -> dict[str, Any]:
    """Which modules selecting each default logger and callback by name imports (one fresh process each)."""
    components = LAZY_COMPONENTS if settings.mode == "full" else (LAZY_COMPONENTS[0], LAZY_COMPONENTS[2])
    out: dict[str, Any] = {}
    for kind, name in components:
        path = workdir / f"lazy-{kind}-{name}.json"
        run_process([python(), "-m", "benchmarks.probes", "--out", str(path), "lazy", kind, name], cwd=workdir,
                    env=subprocess_env()).check(f"lazy probe {kind} {name}")
        out[f"{kind}.{name}"] = json.loads(path.read_text(encoding="utf-8"))
    return out


def time_to_first_step(training: dict[str, Any]) -> dict[str, Any]:
    """Collect the time from process start to the first training step of both CLIs from the training runs."""
    out = {}
    for model, data in training.get("models", {}).items():
        variants = data["variants"]
        if "enhtrain" not in variants or "lightning_cli" not in variants:
            continue
        out[model] = {
            "enhtrain_s": variants["enhtrain"]["time_to_first_step_s"],
            "lightning_cli_s": variants["lightning_cli"]["time_to_first_step_s"],
            "ratio": data["ratios"].get("time_to_first_step enhtrain/lightning_cli"),
        }
    return out


def run(settings: Settings, workroot: Path, config_source: dict[str, Any] | None = None,
        log: Any = print) -> dict[str, Any]:
    """Run every start-up measurement.

    Args:
        settings: Repetitions.
        workroot: Scratch directory.
        config_source: A training config (both CLIs accept it) for the parsing comparison; a default one is
            written when not given.
        log: Called with progress lines.
    """
    workroot.mkdir(parents=True, exist_ok=True)
    config = workroot / "parse-config.yaml"
    config.write_text(yaml.safe_dump(config_source or _default_config(), sort_keys=False), encoding="utf-8")
    out: dict[str, Any] = {}
    log("  start-up: info commands")
    out["info_commands"] = info_commands(settings, workroot)
    log("  start-up: fit --help")
    out["fit_help"] = fit_help(settings, workroot)
    log("  start-up: config parsing")
    out["config_parsing"] = config_parsing(settings, workroot, config)
    log("  start-up: plugin discovery")
    out["plugin_discovery"] = plugin_discovery(settings, workroot)
    log("  start-up: lazy component imports")
    out["lazy_imports"] = lazy_imports(settings, workroot)
    log("  start-up: enhtrain's own start-up phases")
    out["phases"] = startup_phases(workroot, config)
    return out


def startup_phases(workdir: Path, config: Path) -> dict[str, Any]:
    """Time enhtrain's own start-up phases for ``fit --help`` and a one-step ``fit`` (one fresh process each).

    Args:
        workdir: Scratch directory (the run directory of the ``fit`` goes under it).
        config: A training config.
    """
    cases = {
        "fit --help": ["fit", "--help"],
        "fit (1 step)": ["fit", "--config", str(config), "--trainer.max_steps", "1", "--trainer.limit_val_batches",
                         "1", "--trainer.num_sanity_val_steps", "0"],
    }
    out = {}
    for label, argv in cases.items():
        path = workdir / f"phases-{len(out)}.json"
        run_process([python(), "-m", "benchmarks.probes", "--out", str(path), "startup", *argv],
                    cwd=workdir / f"phases-{len(out)}", env=subprocess_env(1)).check(f"start-up phases {label}")
        out[label] = json.loads(path.read_text(encoding="utf-8"))
    return out


def _default_config() -> dict[str, Any]:
    return {
        "seed_everything": 42,
        "trainer": {"accelerator": "cpu", "devices": 1, "max_steps": 10, "max_epochs": 1},
        "model": {"class_path": "enhtrain.models.MLPClassifier", "init_args": {"hidden_dims": [128, 64]}},
        "data": {"class_path": "enhtrain.data.DatasetDataModule", "init_args": {"dataset": "digits"}},
    }

