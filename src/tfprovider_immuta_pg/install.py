"""`terraform-provider-immuta`: put the provider where Terraform finds it, take it away again,
and write release archives in Terraform's layout.

What Terraform runs is a launcher (`launcher_text`): a small shell script that is the same file,
byte for byte, for one version on every machine, so the `h1:` hash of `.terraform.lock.hcl`
holds everywhere. It embeds no path. The Python environment that runs the provider is recorded
outside the provider's directory, in a one-line file holding the interpreter's path (a
"pointer"); the launcher looks, in turn, at:

1. the environment variable ``TF_PROVIDER_IMMUTA_PYTHON`` (an interpreter path);
2. ``<mirror>/.terraform-provider-immuta/<version>/python``, beside the mirror holding the
   launcher (written by ``install --python-beside-mirror``: one environment per mirror, as for a
   development checkout);
3. ``${XDG_DATA_HOME:-~/.local/share}/terraform-provider-immuta/<version>/python`` (written by
   every other ``install``: one environment per user and version).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import platform
import re
import subprocess
import sys
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from . import __version__

HOSTNAME, NAMESPACE, TYPE = "registry.terraform.io", "immuta-pg", "immuta"
SOURCE = f"{NAMESPACE}/{TYPE}"
DISTRIBUTION = "tfprovider-immuta-pg"
PYTHON_VARIABLE = "TF_PROVIDER_IMMUTA_PYTHON"
POINTER_FOLDER = "terraform-provider-immuta"
MIRROR_POINTER_FOLDER = ".terraform-provider-immuta"
# 1980-01-01, the earliest time a zip entry can hold: the archive's bytes depend on nothing else.
ZIP_TIMESTAMP = (1980, 1, 1, 0, 0, 0)

LAUNCHER = """\
#!/bin/sh
# terraform-provider-immuta {version} (immuta-pg/immuta), a Terraform provider written in Python.
# This launcher is the same file on every machine, so the h1: hash Terraform locks is too.
# `terraform-provider-immuta install` records, outside this directory, which Python runs the
# provider; the launcher looks in turn at $TF_PROVIDER_IMMUTA_PYTHON, then at the files below.
version={version}
python=${{TF_PROVIDER_IMMUTA_PYTHON:-}}
for pointer in \\
  "${{0%/*}}/../../../../../.terraform-provider-immuta/$version/python" \\
  "${{XDG_DATA_HOME:-$HOME/.local/share}}/terraform-provider-immuta/$version/python"
do
  if [ -z "$python" ] && [ -f "$pointer" ]; then
    IFS= read -r python < "$pointer"
  fi
done
fail() {{
  # Terraform shows the first line a plugin writes to stdout; a person reads stderr.
  if [ -n "${{TF_PLUGIN_MAGIC_COOKIE:-}}" ]; then
    printf '%s\\n' "$1"
  else
    printf '%s\\n' "$1" >&2
  fi
  exit 1
}}
install="pip install tfprovider-immuta-pg==$version && terraform-provider-immuta install"
if [ -z "$python" ]; then
  fail "terraform-provider-immuta $version: no Python environment is registered for this \
version; run: $install"
fi
if [ ! -x "$python" ]; then
  fail "terraform-provider-immuta $version: the registered Python $python is missing or not \
executable; run: $install"
fi
exec "$python" -P -c 'import os, sys
try:
    from tfprovider_immuta_pg.__main__ import launch
except ImportError as error:
    print(f"terraform-provider-immuta {version}: {{sys.executable}} cannot import the provider \
({{error}}); run: pip install tfprovider-immuta-pg=={version} && terraform-provider-immuta \
install", file=sys.stdout if os.environ.get("TF_PLUGIN_MAGIC_COOKIE") else sys.stderr)
    sys.exit(1)
launch("{version}")' "$@"
"""


def launcher_text(version: str = __version__) -> str:
    """The executable Terraform runs for `version`: fixed bytes, no path inside."""
    if not re.fullmatch(r"[0-9A-Za-z.+-]+", version):
        raise ValueError(f"not a version: {version!r}")
    return LAUNCHER.format(version=version)


def executable_name(version: str = __version__) -> str:
    return f"terraform-provider-{TYPE}_v{version}"


def archive_name(platform_name: str, version: str = __version__) -> str:
    return f"terraform-provider-{TYPE}_{version}_{platform_name}.zip"


def sums_name(version: str = __version__) -> str:
    return f"terraform-provider-{TYPE}_{version}_SHA256SUMS"


def archive_bytes(version: str = __version__) -> bytes:
    """The release zip: the launcher alone, stored (uncompressed), mode 0755, fixed time.

    Stored rather than deflated so that no zlib version can change the bytes (and so the zh:
    hash) from one build machine to the next.
    """
    entry = zipfile.ZipInfo(executable_name(version), date_time=ZIP_TIMESTAMP)
    entry.create_system = 3  # unix, so that the mode below is read
    entry.external_attr = 0o100755 << 16
    entry.compress_type = zipfile.ZIP_STORED
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(entry, launcher_text(version))
    return buffer.getvalue()


def default_platform() -> str:
    """Terraform's name (OS_ARCH) for this machine's platform."""
    name = "freebsd" if sys.platform.startswith("freebsd") else sys.platform
    system = name if name in ("linux", "darwin", "freebsd") else None
    arch = {
        "x86_64": "amd64",
        "amd64": "amd64",
        "aarch64": "arm64",
        "arm64": "arm64",
        "i386": "386",
        "i686": "386",
    }.get(platform.machine().lower())
    if system is None or arch is None:
        raise InstallError(
            f"cannot tell Terraform's platform name for {sys.platform}/{platform.machine()}; "
            "pass --platform OS_ARCH (as `terraform version` prints it, e.g. linux_amd64)"
        )
    return f"{system}_{arch}"


class InstallError(Exception):
    """A failure explained in one line for the person running the command."""


# ------------------------------------------------------------------ where Terraform looks


def home(env: Mapping[str, str]) -> Path:
    return Path(env.get("HOME") or Path.home())


def implied_mirrors(env: Mapping[str, str]) -> list[Path]:
    """The directories Terraform searches without a provider_installation block (Unix).

    The working directory's `terraform.d/plugins` is left out: it belongs to one project.
    """
    user = home(env)
    if sys.platform == "darwin":
        data = [
            user / "Library/Application Support/io.terraform",
            Path("/Library/Application Support/io.terraform"),
        ]
    else:
        data_home = env.get("XDG_DATA_HOME") or str(user / ".local/share")
        data_dirs = (env.get("XDG_DATA_DIRS") or "/usr/local/share:/usr/share").split(":")
        data = [Path(data_home) / "terraform", *(Path(d) / "terraform" for d in data_dirs if d)]
    return [user / ".terraform.d/plugins", *(d / "plugins" for d in data)]


def cli_config_files(env: Mapping[str, str]) -> list[Path]:
    """The CLI configuration files Terraform reads, as it chooses them."""
    override = env.get("TF_CLI_CONFIG_FILE") or env.get("TERRAFORM_CONFIG")
    if override:
        return [Path(override)] if Path(override).is_file() else []
    user = home(env)
    files = [user / ".terraformrc"] if (user / ".terraformrc").is_file() else []
    config_dir = user / ".terraform.d"
    if config_dir.is_dir():
        files += sorted(
            p
            for p in config_dir.iterdir()
            if p.name.endswith((".tfrc", ".tfrc.json")) and p.is_file()
        )
    return files


_BLOCK_COMMENT = re.compile(r"/\*.*?\*/", re.S)
_PROVIDER_INSTALLATION = re.compile(r'^\s*"?provider_installation"?\s*\{', re.M)


def has_provider_installation(path: Path) -> bool:
    """Whether a CLI configuration file has a provider_installation block."""
    text = path.read_text(errors="replace")
    if path.name.endswith(".json"):
        try:
            return "provider_installation" in json.loads(text)
        except (ValueError, TypeError):
            return False
    text = _BLOCK_COMMENT.sub("", text)
    text = "\n".join(
        line for line in text.splitlines() if not line.lstrip().startswith(("#", "//"))
    )
    return bool(_PROVIDER_INSTALLATION.search(text))


def provider_installation_snippet(mirror: Path) -> str:
    path = json.dumps(str(mirror))  # an HCL string literal for any path
    return (
        "provider_installation {\n"
        "  filesystem_mirror {\n"
        f"    path    = {path}\n"
        f'    include = ["{SOURCE}"]\n'
        "  }\n"
        "  direct {\n"
        f'    exclude = ["{SOURCE}"]\n'
        "  }\n"
        "}\n"
    )


# ------------------------------------------------------------------ install and uninstall


def user_pointer(env: Mapping[str, str], version: str = __version__) -> Path:
    data_home = env.get("XDG_DATA_HOME") or str(home(env) / ".local/share")
    return Path(data_home) / POINTER_FOLDER / version / "python"


def mirror_pointer(mirror: Path, version: str = __version__) -> Path:
    return mirror / MIRROR_POINTER_FOLDER / version / "python"


def package_dir(mirror: Path, platform_name: str, version: str = __version__) -> Path:
    """Terraform's unpacked layout: HOSTNAME/NAMESPACE/TYPE/VERSION/OS_ARCH/."""
    return mirror / HOSTNAME / NAMESPACE / TYPE / version / platform_name


def packed_path(mirror: Path, platform_name: str, version: str = __version__) -> Path:
    """Terraform's packed layout: HOSTNAME/NAMESPACE/TYPE/terraform-provider-TYPE_V_OS_ARCH.zip"""
    return mirror / HOSTNAME / NAMESPACE / TYPE / archive_name(platform_name, version)


def write_if_changed(path: Path, data: bytes, mode: int = 0o644) -> bool:
    """Write `data` to `path` atomically unless it already holds exactly that; True if written."""
    try:
        if path.read_bytes() == data and (path.stat().st_mode & 0o777) == mode:
            return False
    except OSError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_bytes(data)
    temporary.chmod(mode)
    os.replace(temporary, path)
    return True


@dataclass
class Report:
    """What a command did, in lines for the person who ran it."""

    lines: list[str] = field(default_factory=list)

    def say(self, line: str = "") -> None:
        self.lines.append(line)


@dataclass(frozen=True)
class Target:
    mirror: Path
    platform_name: str
    packed: bool
    python_beside_mirror: bool
    env: Mapping[str, str]

    @property
    def pointer(self) -> Path:
        if self.python_beside_mirror:
            return mirror_pointer(self.mirror)
        return user_pointer(self.env)

    @property
    def installed_path(self) -> Path:
        if self.packed:
            return packed_path(self.mirror, self.platform_name)
        return package_dir(self.mirror, self.platform_name) / executable_name()


def install(target: Target, python: str = sys.executable) -> Report:
    report = Report()
    if target.packed and target.python_beside_mirror:
        raise InstallError(
            "--python-beside-mirror works with the unpacked layout only (no --packed)"
        )
    if target.packed:
        changed = write_if_changed(target.installed_path, archive_bytes())
    else:
        changed = place_launcher(target.installed_path, report)
    pointer_changed = write_if_changed(target.pointer, f"{python}\n".encode())
    state = "installed" if changed else "already installed, unchanged"
    report.say(f"terraform-provider-immuta {__version__} {state}: {target.installed_path}")
    report.say(
        f"Python environment: {python}"
        + ("" if pointer_changed else " (unchanged)")
        + f", recorded in {target.pointer}"
    )
    if not target.packed:
        check_launcher(target.installed_path, python, target.env)
    override = target.env.get(PYTHON_VARIABLE)
    if override and override != python:
        report.say(f"Note: {PYTHON_VARIABLE}={override} is set; where it is, it takes precedence.")
    compile_package()
    advise(report, target)
    return report


def place_launcher(path: Path, report: Report) -> bool:
    """Make the launcher the only file of its folder (the h1: hash covers every file there)."""
    strays = [p for p in path.parent.iterdir() if p != path] if path.parent.is_dir() else []
    for stray in strays:
        remove(stray)
        report.say(f"removed {stray} (not part of the provider)")
    return write_if_changed(path, launcher_text().encode(), 0o755) or bool(strays)


def check_launcher(launcher: Path, python: str, env: Mapping[str, str]) -> None:
    """Run the installed launcher as Terraform would find it: it must reach this environment.

    Without TF_PROVIDER_IMMUTA_PYTHON: that variable is the user's override, reported apart.
    """
    ignored = ("TF_PLUGIN_MAGIC_COOKIE", PYTHON_VARIABLE)
    result = subprocess.run(
        [str(launcher), "--version"],
        env={k: v for k, v in env.items() if k not in ignored},
        capture_output=True,
        text=True,
        timeout=60,
    )
    expected = f"terraform-provider-immuta {__version__} ({python})"
    if result.returncode != 0 or result.stdout.strip() != expected:
        found = (result.stdout + result.stderr).strip() or f"exit status {result.returncode}"
        raise InstallError(f"the installed launcher does not start this environment: {found}")


def compile_package() -> None:
    """Byte-compile the package now (as pip does by default): Terraform may start the provider
    with PYTHONDONTWRITEBYTECODE, and compiling at every start costs tens of milliseconds."""
    import compileall

    compileall.compile_dir(Path(__file__).parent, quiet=2)


def advise(report: Report, target: Target) -> None:
    """Say what, if anything, the user's CLI configuration needs for Terraform to find it."""
    configured = [p for p in cli_config_files(target.env) if has_provider_installation(p)]
    implied = any(same_path(target.mirror, d) for d in implied_mirrors(target.env))
    if implied and not configured:
        report.say(
            f"`terraform init` finds {SOURCE} there with no CLI configuration: Terraform searches "
            f"{target.mirror} by itself."
        )
        return
    report.say()
    if configured:
        names = ", ".join(str(p) for p in configured)
        report.say(
            f"Your CLI configuration ({names}) has a provider_installation block, so Terraform "
            "searches only the methods it lists. Add this filesystem_mirror to that block, and "
            f'"{SOURCE}" to the exclude list of its other methods (direct, network_mirror):'
        )
    else:
        report.say(
            f"{target.mirror} is not a directory Terraform searches by itself; add this to your "
            "CLI configuration (~/.terraformrc), keeping the methods you already use:"
        )
    report.say()
    report.say(provider_installation_snippet(target.mirror).rstrip("\n"))


def same_path(a: Path, b: Path) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


def remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        import shutil

        shutil.rmtree(path)
    else:
        path.unlink()


def uninstall(target: Target) -> Report:
    report = Report()
    removed = []
    for path in (
        package_dir(target.mirror, target.platform_name) / executable_name(),
        packed_path(target.mirror, target.platform_name),
        target.pointer,
    ):
        if path.exists() or path.is_symlink():
            path.unlink()
            removed.append(path)
            report.say(f"removed {path}")
    prune(package_dir(target.mirror, target.platform_name), stop=target.mirror)
    prune(target.pointer.parent, stop=target.pointer.parent.parent.parent)
    if not removed:
        report.say(f"terraform-provider-immuta {__version__} was not installed in {target.mirror}")
    return report


def prune(folder: Path, stop: Path) -> None:
    """Remove `folder` and its parents while they are empty, up to (not including) `stop`."""
    stop = stop.resolve()
    folder = folder.resolve()
    while folder != stop and stop in folder.parents:
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent


# ------------------------------------------------------------------ release archives


def write_archives(out_dir: Path, platforms: Sequence[str]) -> list[Path]:
    """Release zips for `platforms` and their SHA256SUMS, in Terraform's release layout."""
    out_dir.mkdir(parents=True, exist_ok=True)
    data = archive_bytes()
    digest = hashlib.sha256(data).hexdigest()
    written, sums = [], []
    for name in sorted(set(platforms)):
        path = out_dir / archive_name(name)
        write_if_changed(path, data)
        written.append(path)
        sums.append(f"{digest}  {path.name}\n")
    sums_path = out_dir / sums_name()
    write_if_changed(sums_path, "".join(sums).encode())
    return [*written, sums_path]


# ------------------------------------------------------------------ command line


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="terraform-provider-immuta",
        description=f"Terraform provider {SOURCE} {__version__}: install it where Terraform "
        "finds it, remove it, or write its release archives.",
    )
    commands = root.add_subparsers(dest="command", metavar="COMMAND")

    def placement(command: argparse.ArgumentParser) -> None:
        command.add_argument(
            "--dir",
            type=Path,
            help="a filesystem mirror (e.g. a team mirror) instead of Terraform's implied local "
            "mirror ~/.terraform.d/plugins",
        )
        command.add_argument(
            "--platform", help="Terraform's OS_ARCH (default: this machine's, e.g. linux_amd64)"
        )
        command.add_argument(
            "--packed",
            action="store_true",
            help="the release zip (packed layout) instead of the unpacked directory",
        )
        command.add_argument(
            "--python-beside-mirror",
            action="store_true",
            help=f"record this Python in DIR/{MIRROR_POINTER_FOLDER}/ instead of the per-user data "
            "directory: for a mirror only this environment uses (a development checkout), never "
            "for one shared between machines",
        )

    placement(
        commands.add_parser(
            "install",
            help="install the provider for Terraform, run by this Python environment",
            description="Write the provider's launcher into Terraform's implied local mirror "
            "(or --dir) and record this Python environment as the one that runs it. Re-running it "
            "is harmless; run it again after upgrading the package.",
        )
    )
    placement(
        commands.add_parser("uninstall", help="remove what `install` (with the same options) wrote")
    )
    archive = commands.add_parser(
        "archive",
        help="write release zips and SHA256SUMS (for a network mirror or a private registry)",
    )
    archive.add_argument("--out", type=Path, default=Path("."), help="output folder (default: .)")
    archive.add_argument(
        "--platform",
        action="append",
        help="OS_ARCH to write a zip for; repeat for several (default: linux_amd64)",
    )
    commands.add_parser("version", help="print the provider version")
    return root


def target_from(args: argparse.Namespace, env: Mapping[str, str]) -> Target:
    mirror = args.dir if args.dir is not None else home(env) / ".terraform.d/plugins"
    return Target(
        mirror=Path(os.path.abspath(mirror)),
        platform_name=args.platform or default_platform(),
        packed=args.packed,
        python_beside_mirror=args.python_beside_mirror,
        env=env,
    )


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    args = parser().parse_args(argv)
    try:
        if args.command == "install":
            report = install(target_from(args, env))
        elif args.command == "uninstall":
            report = uninstall(target_from(args, env))
        elif args.command == "archive":
            report = Report()
            for path in write_archives(args.out, args.platform or ["linux_amd64"]):
                report.say(str(path))
        elif args.command == "version":
            report = Report([__version__])
        else:
            parser().print_help(sys.stderr)
            return 2
    except (InstallError, OSError, subprocess.SubprocessError) as error:
        print(f"terraform-provider-immuta: {error}", file=sys.stderr)
        return 1
    print("\n".join(report.lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
