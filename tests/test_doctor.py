import subprocess

from tests.conftest import need
from workbench.config import load_settings
from workbench.doctor import check_disk, run_doctor


def test_dead_socket_is_a_clear_failure(tmp_path, monkeypatch):
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    sock = tmp_path / "nothing.sock"
    monkeypatch.setenv("DOCKER_HOST", f"unix://{sock}")
    report = run_doctor(load_settings(), tmp_path)
    engine = report.get("engine")
    assert engine is not None and engine.status == "fail"
    assert str(sock) in engine.detail
    assert "setup" in engine.fix
    assert not report.ok


def test_doctor_cli_with_dead_socket_exits_1(workbench_cmd, tmp_path):
    env = {"DOCKER_HOST": f"unix://{tmp_path}/none.sock", "PATH": "/usr/bin:/bin"}
    result = subprocess.run([*workbench_cmd, "doctor"], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 1
    assert "[FAIL] engine" in result.stdout and "Traceback" not in result.stderr


def test_doctor_against_live_engine(tmp_path):
    report = run_doctor(load_settings(), tmp_path)
    engine = report.get("engine")
    need(engine is not None and engine.status == "ok", "a running container engine (make setup)")
    assert report.get("isolation").detail in ("rootless engine", "rootful engine")
    assert report.get("limits") is not None
    assert report.get("base image").status == "ok"
    # the bundled demo model is a warning (it cannot do real tasks); any other model file is ok
    from workbench.agent.models import default_model_path, is_bundled

    settings = load_settings()
    demo = settings.model.provider == "llama_cpp" and is_bundled(default_model_path(settings.model.path))
    assert report.get("model").status == ("warn" if demo else "ok")


def test_disk_check(tmp_path):
    finding = check_disk(tmp_path)
    assert finding.status in ("ok", "fail") and "GiB free" in finding.detail


def test_install_sources_reported(tmp_path, monkeypatch):
    wheelhouse = tmp_path / "wheels"
    wheelhouse.mkdir()
    monkeypatch.setenv("WORKBENCH_INSTALL__PIP_FIND_LINKS", str(wheelhouse))
    monkeypatch.setenv("WORKBENCH_INSTALL__PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    from workbench.sandbox.managers import check as check_install_sources

    findings = {f.name: f for f in check_install_sources(load_settings())}
    assert findings["install source: pip wheelhouse"].status == "ok"
    assert findings["install source: pip index"].status == "warn"
    assert "unreachable" in findings["install source: pip index"].detail


def test_no_install_sources_means_registries():
    from workbench.sandbox.managers import check as check_install_sources

    finding, egress = check_install_sources(load_settings())
    assert finding.status == "ok" and "registries" in finding.detail
    assert egress.status == "ok" and "r cloud.r-project.org:443" in egress.detail
    assert "apt the image's apt sources" in egress.detail


def test_doctor_names_a_bad_allow_hosts_entry(monkeypatch):
    monkeypatch.setenv("WORKBENCH_INSTALL__ALLOW_HOSTS", "mirror.lan:http")
    from workbench.sandbox.managers import check_egress as check_install_egress

    finding = check_install_egress(load_settings())
    assert finding.status == "warn" and "'mirror.lan:http'" in finding.detail


def test_report_fonts_are_reported(monkeypatch):
    from workbench.report import fonts

    def check_report_fonts():
        (finding,) = fonts.check(load_settings())
        return finding

    monkeypatch.setattr(fonts, "find_fallback", lambda: None)
    finding = check_report_fonts()
    if fonts.find_dejavu() is not None:
        assert finding.status == "warn" and "no CJK font" in finding.detail and "fonts-droid-fallback" in finding.fix
    monkeypatch.setattr(fonts, "find_dejavu", lambda: None)
    assert check_report_fonts().status == "warn" and "Latin-1" in check_report_fonts().detail


# --- doctor only collects: each subsystem checks its own parts ------------------------------------------
def test_every_subsystem_answers_with_findings():
    """Each registered check is a subsystem module's check(settings) that returns Findings (the engine
    one included: with no engine it says so in a finding)."""
    from workbench.doctor import CHECKS
    from workbench.findings import Finding

    settings = load_settings()
    assert [c.name for c in CHECKS][:3] == ["engine", "model", "embeddings"]
    for check in CHECKS:
        findings = check.run(settings)
        assert findings and all(isinstance(f, Finding) for f in findings), check


def test_a_check_that_raises_is_one_failed_finding(monkeypatch, tmp_path):
    from workbench import doctor
    from workbench.doctor import Check

    checks = doctor.CHECKS.copy()
    checks.register(Check("broken part", "workbench.no_such_module"), origin="a test")
    checks.register(Check("raising part", "workbench.findings", "Finding"), origin="a test")  # Finding(settings) raises
    monkeypatch.setattr(doctor, "CHECKS", checks)
    report = run_doctor(load_settings(), tmp_path)
    broken, raising = report.get("broken part"), report.get("raising part")
    assert broken.status == "fail" and "ModuleNotFoundError" in broken.detail
    assert raising.status == "fail" and "the check itself failed: TypeError" in raising.detail
    assert not report.ok
    assert report.get("disk") is not None and report.get("report fonts") is not None  # the others still ran


def test_doctor_imports_no_subsystem():
    """doctor.py names each subsystem's check module; it imports none of their functions itself."""
    import ast
    from pathlib import Path

    import workbench.doctor

    tree = ast.parse(Path(workbench.doctor.__file__).read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    workbench_imports = {name for name in imported if name and name.startswith("workbench")}
    assert workbench_imports <= {"workbench.config", "workbench.findings", "workbench.registry",
                                 "workbench.project", "workbench"}, workbench_imports


def test_project_findings_say_trust(tmp_path):
    from workbench import trust
    from workbench.doctor import project_findings
    from workbench.project import Project

    assert project_findings(tmp_path) == []  # not a project: nothing to say
    project = Project.init(tmp_path / "p")
    (found,) = project_findings(project.root)
    assert found.name == "trust" and found.status == "ok" and "is trusted" in found.detail
    trust.revoke(project)
    found = project_findings(project.root)
    assert found[0].status == "warn" and found[0].detail.startswith("restricted: ")
    assert f"workbench trust -p {project.root}" in found[0].fix
