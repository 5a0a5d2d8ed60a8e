"""A Mosquitto broker of our own, configured with the settings hydro needs (mosquitto.conf)."""

from __future__ import annotations

import os
import signal
import subprocess
from importlib import resources
from pathlib import Path

from hydro.errors import LocalServiceError
from hydro.local.process import find_binary, free_port, log_tail, wait_for_port


class LocalMosquitto:
    """One broker on 127.0.0.1; restarts keep the port and the persisted sessions and queues."""

    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        self.data_dir = data_dir
        port_file = data_dir / "port"
        if port is None and port_file.is_file():
            port = int(port_file.read_text())
        self.port = port or free_port()
        self.log = data_dir / "mosquitto.log"  # connections, disconnections, errors
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = find_binary("mosquitto", ["/usr/sbin/mosquitto"], "mosquitto")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / "port").write_text(str(self.port))
        config = self.data_dir / "mosquitto.conf"
        own = [f"log_dest file {self.log}"]
        own += [f"log_type {kind}" for kind in ("error", "warning", "notice", "information")]
        if os.geteuid() == 0:
            own.append("user root")  # keep access to data_dir instead of dropping privileges
        config.write_text(self.settings() + "\n".join(own) + "\n", "utf-8")
        self._process = subprocess.Popen(
            [str(binary), "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C in hydro's terminal is for hydro, which stops us
        )
        if not wait_for_port(self.port, 15, alive=self._process):
            self.kill()
            raise LocalServiceError(
                f"mosquitto did not start on port {self.port}:\n{log_tail(self.log)}"
            )

    def settings(self) -> str:
        """Everything but the log lines: hydro's shipped settings, an anonymous listener on our
        port and our persistence folder. A test of another shipped file overrides this."""
        shipped = resources.files("hydro.local").joinpath("mosquitto.conf").read_text("utf-8")
        instance = [
            f"listener {self.port} 127.0.0.1",
            "allow_anonymous true",
            f"persistence_location {self.data_dir}/",
        ]
        return shipped + "\n# this instance\n" + "\n".join(instance) + "\n"

    def stop(self) -> None:
        """SIGTERM: the broker writes its persistence file before it exits."""
        self._end(signal.SIGTERM)

    def kill(self) -> None:
        self._end(signal.SIGKILL)

    def restart(self) -> None:
        self.stop()
        self.start()

    def _end(self, sig: signal.Signals) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(sig)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
