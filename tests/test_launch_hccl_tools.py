"""scripts/hccl_tools.py: HCCL rank tables from an hccn.conf, and their checks."""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOL = os.path.join(ROOT, "scripts", "hccl_tools.py")

# The layout of /etc/hccn.conf on an 8-device Ascend 910 server (device IPs, masks, probes).
HCCN_CONF = "".join(f"address_{i}=192.98.{92 + i % 4}.{100 + i}\nnetmask_{i}=255.255.255.0\n"
                    f"netdetect_{i}=192.98.{92 + i % 4}.1\n" for i in range(8))


def ip(i):
    return f"192.98.{92 + i % 4}.{100 + i}"


@pytest.fixture
def hccn_conf(tmp_path):
    path = tmp_path / "hccn.conf"
    path.write_text(HCCN_CONF)
    return path


def run_tool(*args, cwd=None):
    return subprocess.run([sys.executable, TOOL, *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=60)


def test_eight_devices_written_in_the_hccl_schema(hccn_conf, tmp_path):
    out = tmp_path / "tables"
    proc = run_tool("--device_num", "[0,8)", "--hccn_conf", hccn_conf, "--server_ip", "10.155.111.140",
                    "--out_dir", out)
    assert proc.returncode == 0, proc.stderr
    path = out / "hccl_8p_01234567_10.155.111.140.json"
    assert str(path) in proc.stdout
    expected = {"version": "1.0", "server_count": "1",
                "server_list": [{"server_id": "10.155.111.140",
                                 "device": [{"device_id": str(i), "device_ip": ip(i), "rank_id": str(i)}
                                            for i in range(8)],
                                 "host_nic_ip": "reserve"}],
                "status": "completed"}
    assert json.loads(path.read_text()) == expected


def test_second_group_of_four_gets_rank_ids_from_zero(hccn_conf, tmp_path):
    proc = run_tool("--device_num", "[4,8)", "--hccn_conf", hccn_conf, "--server_ip", "10.0.0.2", "--out_dir", tmp_path)
    assert proc.returncode == 0, proc.stderr
    table = json.loads((tmp_path / "hccl_4p_4567_10.0.0.2.json").read_text())
    devices = table["server_list"][0]["device"]
    assert [(d["device_id"], d["device_ip"], d["rank_id"]) for d in devices] == \
        [(str(i), ip(i), str(i - 4)) for i in range(4, 8)]


def test_default_out_dir_is_the_current_folder(hccn_conf, tmp_path):
    proc = run_tool("--device_num", "[0,1)", "--hccn_conf", hccn_conf, "--server_ip", "10.0.0.3", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "hccl_1p_0_10.0.0.3.json").is_file()


@pytest.mark.parametrize("device_num, message", [
    ("[2,6)", "must stay inside [0,4) or [4,8)"),
    ("[0,9)", "need 0 <= first < last <= 8"),
    ("[3,3)", "need 0 <= first < last <= 8"),
    ("0-8", "must look like '[0,8)'"),
])
def test_bad_device_ranges_are_one_line(hccn_conf, tmp_path, device_num, message):
    proc = run_tool("--device_num", device_num, "--hccn_conf", hccn_conf, "--server_ip", "10.0.0.1",
                    "--out_dir", tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and message in proc.stderr
    assert not list(tmp_path.glob("hccl_*.json"))


def test_missing_conf_or_device_address_is_one_line(tmp_path):
    proc = run_tool("--hccn_conf", tmp_path / "none.conf", "--server_ip", "10.0.0.1", "--out_dir", tmp_path)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "not found" in proc.stderr
    partial = tmp_path / "hccn.conf"
    partial.write_text("address_0=192.98.92.100\naddress_1=192.98.93.101\n")
    proc = run_tool("--device_num", "[0,4)", "--hccn_conf", partial, "--server_ip", "10.0.0.1", "--out_dir", tmp_path)
    assert proc.returncode == 2 and "no address_N line for device(s) 2, 3" in proc.stderr


def test_written_table_passes_the_check_for_its_size_only(hccn_conf, tmp_path):
    run_tool("--device_num", "[0,8)", "--hccn_conf", hccn_conf, "--server_ip", "10.0.0.1", "--out_dir", tmp_path)
    table = tmp_path / "hccl_8p_01234567_10.0.0.1.json"
    assert run_tool("--check", table, "--rank_size", 8).returncode == 0
    proc = run_tool("--check", table, "--rank_size", 4)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: rank table '{table}' lists 8 devices but DEVICE_NUM is 4"


def test_check_accepts_the_older_group_list_layout(tmp_path):
    """Tables of the pre-1.0 layout (group_list / instance_list) still in use with older CANN."""
    instances = [{"devices": [{"device_id": str(i), "device_ip": ip(i)}], "rank_id": str(i), "server_id": "10.0.0.1"}
                 for i in range(2)]
    table = {"board_id": "0x0000", "chip_info": "910", "deploy_mode": "lab", "group_count": "1",
             "group_list": [{"device_num": "2", "server_num": "1", "group_name": "", "instance_count": "2",
                             "instance_list": instances}], "para_plane_nic_location": "device",
             "para_plane_nic_name": ["eth0", "eth1"], "para_plane_nic_num": "2", "status": "completed"}
    path = tmp_path / "old.json"
    path.write_text(json.dumps(table))
    assert run_tool("--check", path, "--rank_size", 2).returncode == 0
    assert "lists 2 devices" in run_tool("--check", path, "--rank_size", 8).stderr


def test_check_reports_malformed_tables(tmp_path):
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"version": "1.0", "status": "completed"}))
    proc = run_tool("--check", path, "--rank_size", 8)
    assert proc.returncode == 2 and "neither 'server_list' nor 'group_list'" in proc.stderr
    path.write_text(json.dumps({"server_list": [{"device": [{"device_id": "0"}]}]}))
    proc = run_tool("--check", path, "--rank_size", 1)
    assert proc.returncode == 2 and "malformed" in proc.stderr and proc.stderr.count("\n") == 1


def test_device_ip_that_is_not_an_ip_is_refused(tmp_path):
    conf = tmp_path / "hccn.conf"
    conf.write_text(HCCN_CONF.replace(f"address_3={ip(3)}", "address_3=eth3"))
    proc = run_tool("--device_num", "[0,8)", "--hccn_conf", conf, "--server_ip", "10.0.0.1", "--out_dir", tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: hccn.conf: address_3 is 'eth3', not an IP address"
    assert not list(tmp_path.glob("hccl_*.json"))
    assert run_tool("--device_num", "[0,4)", "--hccn_conf", conf, "--server_ip", "10.0.0.1",
                    "--out_dir", tmp_path).returncode == 2


def server_table(server_id, first_ip):
    """A one-server table of 8 devices whose IPs start at 192.98.<first_ip>.100."""
    return {"version": "1.0", "server_count": "1", "status": "completed",
            "server_list": [{"server_id": server_id, "host_nic_ip": "reserve",
                             "device": [{"device_id": str(d), "device_ip": f"192.98.{first_ip}.{100 + d}",
                                         "rank_id": str(d)} for d in range(8)]}]}


def test_merge_keeps_the_given_server_order_and_renumbers_ranks(tmp_path):
    paths = []
    for i, server in enumerate(("10.0.0.3", "10.0.0.1", "10.0.0.2")):  # not sorted: the order given wins
        paths.append(tmp_path / f"s{i}.json")
        paths[-1].write_text(json.dumps(server_table(server, 90 + i)))
    proc = run_tool("--merge", *paths, "--out_dir", tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    merged = json.loads((tmp_path / "out" / "hccl_24p_3s_10.0.0.3.json").read_text())
    assert merged["server_count"] == "3" and merged["version"] == "1.0"
    assert [s["server_id"] for s in merged["server_list"]] == ["10.0.0.3", "10.0.0.1", "10.0.0.2"]
    for i, server in enumerate(merged["server_list"]):
        assert [(d["device_id"], d["device_ip"], d["rank_id"]) for d in server["device"]] == \
            [(str(d), f"192.98.{90 + i}.{100 + d}", str(8 * i + d)) for d in range(8)]
    assert run_tool("--check", tmp_path / "out" / "hccl_24p_3s_10.0.0.3.json", "--rank_size", 24).returncode == 0


def test_merge_refuses_the_same_server_twice(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps(server_table("10.0.0.1", 92)))
    (tmp_path / "b.json").write_text(json.dumps(server_table("10.0.0.1", 93)))
    proc = run_tool("--merge", tmp_path / "a.json", tmp_path / "b.json", "--out_dir", tmp_path)
    assert proc.returncode == 2 and "lists server 10.0.0.1 more than once" in proc.stderr
    assert proc.stderr.count("\n") == 1 and not list(tmp_path.glob("hccl_*.json"))


@pytest.mark.parametrize("edit, message", [
    (lambda t: t["server_list"][1]["device"][2].update(device_id="1"), "server 1 (10.0.0.2) lists a device_id twice"),
    (lambda t: t["server_list"][1]["device"][5].update(device_ip="npu5"),
     "server 1 (10.0.0.2): device 5's device_ip is 'npu5', not an IP address"),
    (lambda t: t["server_list"][1]["device"][0].update(device_ip="192.98.92.100"),
     "gives device_ip 192.98.92.100 to two devices"),
    (lambda t: t.update(server_count="3"), "says server_count 3 but lists 2 servers"),
    (lambda t: t["server_list"][1]["device"][7].update(rank_id="16"), "has rank ids"),
])
def test_check_validates_each_server_of_a_multi_server_table(tmp_path, edit, message):
    table = server_table("10.0.0.1", 92)
    second = server_table("10.0.0.2", 93)["server_list"][0]
    for dev in second["device"]:
        dev["rank_id"] = str(int(dev["rank_id"]) + 8)
    table["server_list"].append(second)
    table["server_count"] = "2"
    path = tmp_path / "t.json"
    path.write_text(json.dumps(table))
    assert run_tool("--check", path, "--rank_size", 16).returncode == 0
    edit(table)
    path.write_text(json.dumps(table))
    proc = run_tool("--check", path)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and message in proc.stderr, proc.stderr
