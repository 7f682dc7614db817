"""Apache Kafka's broker jars, fetched from Maven Central with Maven and cached outside
the repository (never vendored).

A tiny pom names ``org.apache.kafka:kafka_2.13`` and an SLF4J binding (the broker's POM has
none: without one it runs but logs nothing); ``mvn dependency:copy-dependencies
-DincludeScope=runtime`` copies the broker and everything it needs into
``<cache>/kafka-<version>/libs``. A marker file written last says the copy is complete, and a
file lock keeps two processes (two test sessions, a test and `dev up`) from fetching at once.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from sealtrail.errors import ConfigError, TransportError

__all__ = ["KAFKA_VERSION", "KafkaRuntime", "cache_root", "fetch_kafka", "java_major",
           "missing_tools"]

#: The Apache Kafka release the dev stack, the tests and deploy/ use
#: (tests/integration/deploy/test_deploy.py checks that deploy/ names the same one).
KAFKA_VERSION = "4.1.1"
SCALA_VERSION = "2.13"
#: Kafka 4.1 logs through SLF4J 1.7 to Log4j2: this binding routes one to the other.
SLF4J_BINDING = ("org.apache.logging.log4j", "log4j-slf4j-impl", "2.24.3")
MIN_JAVA = 17
FETCH_TIMEOUT = 900.0
_COMPLETE = ".complete"


@dataclass(frozen=True)
class KafkaRuntime:
    """Where a fetched Kafka lives: the jars (a classpath) and its version."""

    version: str
    libs: Path

    @property
    def classpath(self) -> str:
        return str(self.libs / "*")

    def java(self) -> str:
        java = shutil.which("java")
        if java is None:
            raise ConfigError(_MISSING_JAVA)
        return java


_MISSING_JAVA = ("Apache Kafka needs Java 17 or newer on the PATH (`java` not found); install "
                 "a JDK (Debian: apt-get install openjdk-17-jre-headless), or use the embedded "
                 "broker (leave out --broker kafka)")
_MISSING_MVN = ("fetching Apache Kafka needs Maven on the PATH (`mvn` not found); install it "
                "(Debian: apt-get install maven), or use the embedded broker (leave out "
                "--broker kafka)")


def cache_root(env: dict[str, str] | None = None) -> Path:
    """``$SEALTRAIL_KAFKA_CACHE``, else ``$XDG_CACHE_HOME/sealtrail``, else
    ``~/.cache/sealtrail``: outside any checkout, shared by every clone on the machine."""
    env = dict(os.environ) if env is None else env
    if env.get("SEALTRAIL_KAFKA_CACHE"):
        return Path(env["SEALTRAIL_KAFKA_CACHE"])
    base = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sealtrail"


def java_major(java: str = "java") -> int:
    """The major version of ``java`` (17 for "17.0.15"); 0 when it cannot be run."""
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return 0
    found = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if not found:
        return 0
    major = int(found.group(1))
    return int(found.group(2) or 0) if major == 1 else major


def missing_tools() -> str | None:
    """Why Apache Kafka cannot be fetched and run here, or None when it can."""
    if shutil.which("java") is None:
        return _MISSING_JAVA
    if shutil.which("mvn") is None:
        return _MISSING_MVN
    if java_major() < MIN_JAVA:
        return (f"Apache Kafka {KAFKA_VERSION} needs Java {MIN_JAVA} or newer; `java -version` "
                f"reports {java_major() or 'nothing readable'}")
    return None


def pom_xml(version: str = KAFKA_VERSION) -> str:
    """The pom that names the broker and the SLF4J binding, nothing else."""
    group, artifact, binding = SLF4J_BINDING
    return f"""<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dev.sealtrail</groupId>
  <artifactId>sealtrail-kafka-broker</artifactId>
  <version>{version}</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_{SCALA_VERSION}</artifactId>
      <version>{version}</version>
    </dependency>
    <dependency>
      <groupId>{group}</groupId>
      <artifactId>{artifact}</artifactId>
      <version>{binding}</version>
    </dependency>
  </dependencies>
</project>
"""


def fetch_kafka(version: str = KAFKA_VERSION, *, root: Path | None = None,
                timeout: float = FETCH_TIMEOUT) -> KafkaRuntime:
    """The jars of Apache Kafka ``version``, fetched with Maven on first use and cached.

    Raises ConfigError when java or mvn is missing and TransportError when Maven fails
    (with the end of its output, which names the artifact it could not get)."""
    why = missing_tools()
    if why:
        raise ConfigError(why)
    home = (root or cache_root()) / f"kafka-{version}"
    libs = home / "libs"
    if (home / _COMPLETE).exists():
        return KafkaRuntime(version, libs)
    home.mkdir(parents=True, exist_ok=True)
    with open(home / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (home / _COMPLETE).exists():
            _copy_dependencies(home, version, timeout)
    return KafkaRuntime(version, libs)


def _copy_dependencies(home: Path, version: str, timeout: float) -> None:
    (home / "pom.xml").write_text(pom_xml(version))
    staging = home / "libs.partial"
    shutil.rmtree(staging, ignore_errors=True)
    mvn = shutil.which("mvn") or "mvn"
    cmd = [mvn, "-B", "-q", "-f", str(home / "pom.xml"), "dependency:copy-dependencies",
           "-DincludeScope=runtime", f"-DoutputDirectory={staging}"]
    started = time.monotonic()
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                             stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise TransportError(f"fetching Apache Kafka {version} with Maven took over "
                             f"{timeout:.0f} s; is Maven Central reachable?") from None
    jars = list(staging.glob("*.jar")) if staging.is_dir() else []
    if out.returncode != 0 or not any(j.name.startswith(f"kafka_{SCALA_VERSION}-") for j in jars):
        tail = "\n".join((out.stdout + out.stderr).strip().splitlines()[-15:])
        raise TransportError(f"could not fetch Apache Kafka {version} from Maven Central "
                             f"(mvn exited {out.returncode}):\n{tail}")
    shutil.rmtree(home / "libs", ignore_errors=True)
    staging.rename(home / "libs")
    (home / _COMPLETE).write_text(f"{len(jars)} jars in {time.monotonic() - started:.1f} s\n")
