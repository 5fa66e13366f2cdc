"""`make up`'s stack for real: a Spark standalone master and worker, an MLflow server and Airflow,
all on 127.0.0.1, started once for this module.

- every service answers and the summary prints the URLs and the Airflow login;
- the cluster runs an application submitted to spark://127.0.0.1:7077 with our package shipped as
  a `--py-files` zip, and the executors import it from the zip;
- headless Chromium logs into the Airflow UI, sees the four DAGs, triggers `clickstream_ingest`
  and sees it succeed: its spark-submit runs `jobs/ingest_clickstream.py` on the standalone
  cluster (screenshots under the test's tmp dir, or `$CLICKML_SCREENSHOT_DIR`);
- `down` stops exactly what `up` started.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from pipelines.orchestration.packaging import build_pyfiles_zip
from pipelines.orchestration.stack import ALL_SERVICES, Ports, Stack, _port_open

pytestmark = pytest.mark.e2e

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
CHROMEDRIVER = shutil.which("chromedriver")

PROBE = """
import json
from pyspark.sql import SparkSession
spark = SparkSession.builder.getOrCreate()
def where(_):
    import pipelines.config.models
    yield pipelines.config.models.__file__
files = spark.sparkContext.parallelize(range(2), 2).mapPartitions(where).collect()
print("PROBE " + json.dumps({"master": spark.sparkContext.master, "files": files}))
spark.stop()
"""


def _skip(reason: str) -> None:
    print(f"SKIP: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    ports = Ports()
    wanted = (ports.spark, ports.spark_ui, ports.worker_ui, ports.mlflow, ports.kafka, ports.kafka_controller, ports.redis,
              ports.airflow)
    busy = [p for p in wanted if _port_open(p)]
    if busy:
        _skip(f"ports {busy} on 127.0.0.1 are taken (is `make up` running? `make down` stops it)")
    base = tmp_path_factory.mktemp("stack")
    overrides = ("orchestration.spark_submit.job_overrides=[spark.shuffle_partitions=2];"
                 "orchestration.ingest.sensor.poke_interval_seconds=2")
    stack = Stack(base / "state", ports, lakehouse=base / "lakehouse", worker_cores=2, worker_memory="1g",
                  extra_env={"CLICKML_LANDING": str(base / "landing"), "CLICKML_LAKEHOUSE": str(base / "lakehouse"),
                             "CLICKML_DAG_OVERRIDES": overrides,
                             # only the runs the test triggers: no scheduled runs when a DAG is unpaused
                             "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False"})
    try:
        stack.up(ALL_SERVICES, timeout=300, echo=print)
        yield stack
    finally:
        stack.down(ALL_SERVICES, echo=print)


def test_every_service_answers_and_the_summary_tells_how_to_log_in(stack):
    summary = stack.summary()
    print(summary)
    for url in ("spark://127.0.0.1:7077", "http://127.0.0.1:8090", "http://127.0.0.1:5000", "http://127.0.0.1:8080"):
        assert url in summary
    assert f"admin / {stack.airflow_password()}" in summary and stack.airflow_password()
    with urllib.request.urlopen("http://127.0.0.1:5000/health", timeout=10) as response:
        assert response.read().decode().strip() == "OK"
    with urllib.request.urlopen("http://127.0.0.1:8090/json/", timeout=10) as response:
        master = json.loads(response.read())
    assert master["status"] == "ALIVE" and master["aliveworkers"] == 1
    dags = {d["dag_id"]: d for d in stack.airflow_api("dags")["dags"]}
    assert set(dags) == {"clickstream_ingest", "clickstream_etl_features", "model_training", "model_monitoring"}
    assert stack.airflow_api("importErrors")["total_entries"] == 0
    connection = json.loads(stack.airflow_env()["AIRFLOW_CONN_CLICKML_SPARK"])
    assert (connection["host"], connection["port"]) == ("spark://127.0.0.1", 7077)


def test_the_cluster_runs_a_submitted_application_with_the_package_shipped(stack, tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE)
    pyfiles = build_pyfiles_zip(tmp_path / "clickml-pipelines.zip")
    proc = subprocess.run([
        str(stack.venv_bin / "spark-submit"), "--master", stack.master_url, "--py-files", str(pyfiles),
        "--conf", f"spark.pyspark.python={sys.executable}", "--conf", f"spark.pyspark.driver.python={sys.executable}",
        "--conf", "spark.cores.max=1", "--conf", "spark.executor.memory=512m", str(probe),
    ], capture_output=True, text=True, timeout=300, cwd=tmp_path, env=stack.base_env(), check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(next(line for line in proc.stdout.splitlines() if line.startswith("PROBE "))[6:])
    assert result["master"] == "spark://127.0.0.1:7077"
    # --py-files goes first on the executors' sys.path, ahead of the installed copy
    assert all("clickml-pipelines.zip/pipelines/config/models.py" in f for f in result["files"]), result


def _land_recent_hours(landing: Path) -> int:
    """Landing files for the previous and the current hour: a manual run ingests the last complete
    hour, whichever side of an hour boundary the trigger falls on."""
    now = dt.datetime.now(dt.timezone.utc).replace(minute=0, second=0, microsecond=0)
    count = 0
    for hour in (now - dt.timedelta(hours=1), now):
        folder = landing / "clickstream" / f"date={hour:%Y-%m-%d}" / f"hour={hour:%H}"
        folder.mkdir(parents=True, exist_ok=True)
        lines = [json.dumps({
            "event_id": f"ui-{hour:%H}-{i}", "event_time": (hour + dt.timedelta(minutes=i)).isoformat(),
            "event_type": "product_view", "user_id": f"u{i % 3}", "session_id": f"s{i % 3}", "product_id": "p1",
            "category": "electronics.phone", "brand": "acme", "price": 10.5, "currency": "USD", "device": "desktop",
            "referrer": "direct", "country": "DE"}) for i in range(5)]
        (folder / "part-00000.jsonl").write_text("\n".join(lines) + "\n")
        count += len(lines)
    return count


@pytest.fixture
def browser(tmp_path):
    if CHROMIUM is None or CHROMEDRIVER is None:
        _skip("no headless browser: install chromium and chromium-driver (`make browser-deps` does it as root)")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.options import Options
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _skip("selenium is not installed (dev extra)")
    options = Options()
    options.binary_location = CHROMIUM
    for argument in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp_path / 'chromium'}",
                     "--window-size=1400,900"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def _screenshot(driver, tmp_path: Path, name: str) -> Path:
    target = Path(os.environ.get("CLICKML_SCREENSHOT_DIR") or tmp_path) / name
    target.parent.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(target))
    print(f"screenshot: {target}")
    return target


def _wait_for(predicate, timeout: float, what: str, interval: float = 1.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def test_airflow_ui_login_dags_trigger_and_success(stack, browser, tmp_path):
    from selenium.webdriver.common.by import By

    landed = _land_recent_hours(Path(stack.extra_env["CLICKML_LANDING"]))
    base = f"http://127.0.0.1:{stack.ports.airflow}"
    browser.get(base + "/")
    _wait_for(lambda: browser.find_elements(By.NAME, "username"), 60, "the login form")
    browser.find_element(By.NAME, "username").send_keys("admin")
    browser.find_element(By.NAME, "password").send_keys(stack.airflow_password())
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    _wait_for(lambda: "/auth/login" not in browser.current_url, 60, "the login to go through")

    browser.get(base + "/dags")
    body = lambda: browser.find_element(By.TAG_NAME, "body").text
    _wait_for(lambda: all(d in body() for d in ("clickstream_ingest", "clickstream_etl_features", "model_training",
                                                "model_monitoring")),
              60, "the four DAGs in the list")
    _screenshot(browser, tmp_path, "airflow-dags.png")

    browser.get(base + "/dags/clickstream_ingest")
    _wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "[data-testid=trigger-dag-button]"), 60, "the Trigger button")
    browser.find_element(By.CSS_SELECTOR, "[data-testid=trigger-dag-button]").click()
    dialog = _wait_for(lambda: [d for d in browser.find_elements(By.CSS_SELECTOR, "[role=dialog]") if "Trigger" in d.text],
                       30, "the trigger dialog")[0]
    assert "Unpause clickstream_ingest on trigger" in dialog.text
    confirm = [b for b in dialog.find_elements(By.TAG_NAME, "button") if b.text.strip() == "Trigger"]
    confirm[-1].click()
    # The run is followed through the REST API; the DAG page's polling would keep the browser busy
    # meanwhile (~25 s of a core while the run's Spark applications need both), so it is left.
    _wait_for(lambda: (stack.airflow_api("dags/clickstream_ingest/dagRuns?limit=1") or {}).get("dag_runs"), 30,
              "the triggered run")
    browser.get("about:blank")

    def finished():
        runs = (stack.airflow_api("dags/clickstream_ingest/dagRuns?limit=5") or {}).get("dag_runs", [])
        return runs and runs[0]["state"] in ("success", "failed") and runs[0]
    try:
        run = _wait_for(finished, 420, "the triggered run to finish", interval=3)
    except AssertionError as exc:  # say where it stands: a run queued behind a paused DAG, a task stuck, ...
        dag = stack.airflow_api("dags/clickstream_ingest") or {}
        runs = (stack.airflow_api("dags/clickstream_ingest/dagRuns?limit=1") or {}).get("dag_runs", [])
        tasks = stack.airflow_api(f"dags/clickstream_ingest/dagRuns/{runs[0]['dag_run_id']}/taskInstances") if runs else {}
        states = {t["task_id"]: t["state"] for t in (tasks or {}).get("task_instances", [])}
        raise AssertionError(f"{exc}: DAG paused={dag.get('is_paused')}, run state={runs[0]['state'] if runs else None}, "
                             f"tasks={states}") from None
    browser.get(f"{base}/dags/clickstream_ingest/runs/{run['dag_run_id']}")
    _wait_for(lambda: "success" in body().lower() or "failed" in body().lower(), 60, "the run page")
    time.sleep(2)
    _screenshot(browser, tmp_path, "airflow-ingest-run.png")
    tasks = stack.airflow_api(f"dags/clickstream_ingest/dagRuns/{run['dag_run_id']}/taskInstances")["task_instances"]
    states = {t["task_id"]: t["state"] for t in tasks}
    assert run["state"] == "success", (states, stack.log_tail("airflow", 60))
    assert states == {"clickstream.wait_for_landing_files": "success", "clickstream.ingest": "success",
                      "validate_bronze": "success"}

    from deltalake import DeltaTable

    events = DeltaTable(str(stack.lakehouse / "bronze" / "events")).to_pyarrow_table()
    assert 0 < events.num_rows <= landed  # one of the two landed hours: the run's data interval


def test_down_stops_exactly_what_up_started(stack):
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], start_new_session=True)
    try:
        pids = {name: stack.running(name) for name in ALL_SERVICES}
        assert all(pids.values()), pids
        stack.down(ALL_SERVICES, echo=print)
        assert all(stack.running(name) is None for name in ALL_SERVICES)
        for pid in pids.values():
            assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split(") ")[1][:1]
        assert not any(_port_open(p) for p in (stack.ports.spark, stack.ports.mlflow, stack.ports.airflow))
        assert bystander.poll() is None, "down stopped a process it did not start"
    finally:
        bystander.kill()
        bystander.wait()
