"""Run the real terraform CLI against the provider built into dist/."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
CLI_CONFIG = REPO_ROOT / "dist" / "terraformrc"
# The newest Terraform tested is the one on PATH (1.11.4); the oldest is installed by
# tools/install-test-servers.sh.
TERRAFORM = "terraform"
TERRAFORM_1_0 = REPO_ROOT / ".cache" / "terraform-1.0.3" / "terraform"
PROVIDER_SOURCE = "immuta-pg/immuta"

REQUIRED_PROVIDERS = """terraform {
  required_providers {
    immuta = { source = "immuta-pg/immuta" }
  }
}
"""


def terraform_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """A clean environment: our CLI config, no stray provider or AWS settings."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TF_", "PG", "AWS_", "IMMUTA_", "PLUGIN_"))
    }
    env.update(
        TF_CLI_CONFIG_FILE=str(CLI_CONFIG),
        TF_IN_AUTOMATION="1",
        TF_INPUT="0",
        CHECKPOINT_DISABLE="1",
    )
    env.update(extra or {})
    return env


@dataclass
class Result:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    @property
    def text(self) -> str:
        """stdout and stderr with whitespace runs as single spaces (terraform wraps lines)."""
        return " ".join(self.output.split())

    def json_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stdout.splitlines() if line.startswith("{")]


class TerraformError(AssertionError):
    pass


class Terraform:
    """One working directory; every command runs the real terraform binary (`binary`)."""

    def __init__(
        self, workdir: Path, env: dict[str, str] | None = None, binary: str | Path = TERRAFORM
    ) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.env = terraform_env(env)
        self.binary = str(binary)
        self._initialised = False

    def write(self, text: str, name: str = "main.tf", with_required_providers: bool = True) -> None:
        body = (REQUIRED_PROVIDERS + text) if with_required_providers else text
        (self.workdir / name).write_text(body)

    def run(
        self,
        *args: str,
        check: bool = True,
        env: dict[str, str] | None = None,
        timeout: float = 300,
    ) -> Result:
        if args[:1] == ("test",) and self.binary == str(TERRAFORM_1_0):
            # Terraform 1.0's `test` is an old experiment: it ignores *.tftest.hcl files,
            # prints "No tests defined" and exits 0, which would pass any test.
            raise TerraformError("terraform test under Terraform 1.0 tests nothing")
        command = [self.binary, *args]
        completed = subprocess.run(
            command,
            cwd=self.workdir,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        result = Result(command, completed.returncode, completed.stdout, completed.stderr)
        if check and completed.returncode != 0:
            raise TerraformError(
                f"{' '.join(command)} exited {completed.returncode}\n"
                f"--- stdout\n{completed.stdout}\n--- stderr\n{completed.stderr}"
            )
        return result

    def init(self) -> Result:
        result = self.run("init", "-no-color", "-input=false")
        self._initialised = True
        return result

    def _ensure_init(self) -> None:
        if not self._initialised:
            self.init()

    def validate(self) -> dict[str, Any]:
        self._ensure_init()
        return json.loads(self.run("validate", "-json", "-no-color", check=False).stdout)

    def apply(self, *args: str, check: bool = True) -> Result:
        self._ensure_init()
        return self.run("apply", "-auto-approve", "-no-color", "-input=false", *args, check=check)

    def destroy(self, *args: str, check: bool = True) -> Result:
        self._ensure_init()
        return self.run("destroy", "-auto-approve", "-no-color", "-input=false", *args, check=check)

    def plan(self, *args: str, check: bool = False) -> Result:
        """`plan -detailed-exitcode`: 0 no changes, 1 error, 2 changes."""
        self._ensure_init()
        return self.run(
            "plan", "-detailed-exitcode", "-no-color", "-input=false", *args, check=check
        )

    # ------------------------------------------------------------------ steps that assert

    def apply_fails(self, *expected: str) -> Result:
        """apply, expecting an error whose output holds each of `expected` (spaces folded)."""
        result = self.apply(check=False)
        _expect(result, 1, expected)
        return result

    def plan_is_empty(self, why: str = "") -> Result:
        """plan, expecting no changes (exit 0)."""
        result = self.plan()
        _expect(result, 0, (), why)
        return result

    def plan_changes(self, *expected: str) -> Result:
        """plan, expecting changes (exit 2) and each of `expected` in the output."""
        result = self.plan()
        _expect(result, 2, expected)
        return result

    def plan_fails(self, *expected: str) -> Result:
        """plan, expecting an error whose output holds each of `expected`."""
        result = self.plan()
        _expect(result, 1, expected)
        return result

    def destroyed(self) -> Result:
        """destroy, expecting success and nothing left in the state."""
        result = self.destroy()
        left = self.resources()
        if left:
            raise TerraformError(f"destroy left {sorted(left)} in the state\n{result.output}")
        return result

    def plan_json(self, *args: str) -> dict[str, Any]:
        self._ensure_init()
        self.run("plan", "-out=tfplan", "-no-color", "-input=false", *args)
        return json.loads(self.run("show", "-json", "tfplan").stdout)

    def state(self) -> dict[str, Any]:
        result = self.run("show", "-json")
        return json.loads(result.stdout)

    def resources(self) -> dict[str, dict[str, Any]]:
        """address -> attribute values, from `terraform show -json`."""
        values = self.state().get("values") or {}
        found = {}
        for resource in (values.get("root_module") or {}).get("resources", []):
            found[resource["address"]] = resource["values"]
        return found

    def outputs(self) -> dict[str, Any]:
        raw = json.loads(self.run("output", "-json").stdout)
        return {k: v["value"] for k, v in raw.items()}

    def state_file_text(self) -> str:
        path = self.workdir / "terraform.tfstate"
        return path.read_text() if path.exists() else ""

    def clean(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)


def _expect(result: Result, code: int, expected: tuple[str, ...], why: str = "") -> None:
    missing = [text for text in expected if " ".join(text.split()) not in result.text]
    if result.returncode != code or missing:
        raise TerraformError(
            f"{' '.join(result.args)}: expected exit {code}"
            + (f" with {missing}" if missing else "")
            + (f" ({why})" if why else "")
            + f", got exit {result.returncode}\n--- stdout\n{result.stdout}\n"
            f"--- stderr\n{result.stderr}"
        )


@contextmanager
def step(name: str) -> Iterator[None]:
    """A named phase of a longer test: a failure inside says which phase it was."""
    try:
        yield
    except BaseException as exc:
        exc.add_note(f"in step: {name}")
        raise


class Background:
    """A terraform command running in its own process group, output kept in files."""

    def __init__(self, tf: Terraform, *args: str) -> None:
        tf._ensure_init()
        self.args = ["terraform", *args]
        self._out = open(tf.workdir / ".bg.stdout", "w+")  # noqa: SIM115
        self._err = open(tf.workdir / ".bg.stderr", "w+")  # noqa: SIM115
        self.proc = subprocess.Popen(
            self.args,
            cwd=tf.workdir,
            env=tf.env,
            stdin=subprocess.DEVNULL,
            stdout=self._out,
            stderr=self._err,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def running(self) -> bool:
        return self.proc.poll() is None

    def wait(self, timeout: float = 120) -> Result | None:
        """The result; None when still running after `timeout` (then killed)."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None
        self._out.seek(0)
        self._err.seek(0)
        return Result(self.args, self.proc.returncode, self._out.read(), self._err.read())

    def kill(self) -> None:
        """SIGKILL terraform and its providers (the process group this command started)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def close(self) -> None:
        if self.running():
            self.kill()
        self._out.close()
        self._err.close()


def finished(command: Background, timeout: float = 120) -> Result:
    result = command.wait(timeout)
    assert result is not None, f"{' '.join(command.args)} still running after {timeout} s"
    return result


def wait_for(what: str, check: Callable[[], object], timeout: float = 60.0) -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)
