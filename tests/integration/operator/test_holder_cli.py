"""``tenantcard holder`` against the live operator: list my containers and who holds them, approve and refuse
with the one-time code, report my device lost."""

from __future__ import annotations

from click.testing import CliRunner

from tenantcard.cli.main import cli
from tests.integration.operator.conftest import LiveOperator
from tests.support.operator_rig import manufacture, request, wait_job


def test_holder_command_line(live_operator: LiveOperator) -> None:
    admin = live_operator.admin()
    dev = manufacture(admin, containers=2, serial="HOLDER-CLI")
    try:
        p = admin.post("/v1/admin/providers", json={"name": "Shop"}).json()
        h = admin.post("/v1/admin/holders", json={"name": "Carol"}).json()
        admin.post(f"/v1/admin/holders/{h['id']}/devices", json={"device_id": dev.device_id})
        c = admin.post(
            "/v1/admin/contracts",
            json={"provider_id": p["id"], "option": "A", "quota": 1024, "consent_required": True},
        ).json()
        pc = live_operator.client(p["credential"])
        runner = CliRunner()
        base = ["holder", "--operator", live_operator.url, "--credential", h["credential"]]

        r = runner.invoke(
            cli, ["holder", "--operator", live_operator.url, "devices"], env={"TENANTCARD_HOLDER_CREDENTIAL": ""}
        )
        assert r.exit_code != 0 and "credential" in r.output
        r = runner.invoke(cli, ["holder", "--operator", live_operator.url, "--credential", "tch_00.x", "devices"])
        assert r.exit_code == 1 and "unauthenticated" in r.output

        first = request(pc, c["id"], {"serial": dev.serial}).json()
        second = request(pc, c["id"], {"serial": dev.serial}).json()
        r = runner.invoke(cli, [*base, "requests"])
        assert r.exit_code == 0 and first["id"] in r.output and "Shop" in r.output
        r = runner.invoke(cli, [*base, "approve", first["id"], "--code", "not-it"])
        assert r.exit_code == 1 and "wrong_code" in r.output
        r = runner.invoke(cli, [*base, "approve", first["id"], "--code", first["consent_code"]])
        assert r.exit_code == 0 and "placed" in r.output, r.output
        r = runner.invoke(cli, [*base, "refuse", second["id"]], input=second["consent_code"] + "\n")
        assert r.exit_code == 0 and "refused" in r.output
        assert second["consent_code"] not in r.output.replace("Code: \n", "")
        r = runner.invoke(cli, [*base, "devices"])
        assert r.exit_code == 0 and "F07463000000  authorized" in r.output and "Shop" in r.output

        r = runner.invoke(cli, [*base, "lost", dev.device_id, "--yes"])
        assert r.exit_code == 0 and "device marked lost" in r.output
        jobs = admin.get("/v1/admin/jobs").json()
        assert wait_job(admin, jobs[0]["id"])["status"] == "done"
        r = runner.invoke(cli, [*base, "devices"])
        assert "(lost)" in r.output and "Shop" not in r.output
        r = runner.invoke(cli, ["holder", "--operator", "http://127.0.0.1:1", "--credential", "x", "devices"])
        assert r.exit_code == 1 and "cannot reach the operator" in r.output
    finally:
        dev.stop()
