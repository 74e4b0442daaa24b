"""HCCL rank tables for Ascend data parallel: write one from /etc/hccn.conf, or check one.

    python scripts/hccl_tools.py --device_num "[0,8)" [--visible_devices 0,1,...,7]
                                 [--hccn_conf /etc/hccn.conf] [--server_ip IP] [--out_dir .]
    python scripts/hccl_tools.py --check TABLE.json --rank_size 8

Writing: device IPs come from the ``address_<device>=<ip>`` lines of hccn.conf; the table is
``hccl_{N}p_{ids}_{server_ip}.json`` (e.g. ``hccl_8p_01234567_10.0.0.1.json``) with every value a
string, rank ids 0..N-1 in device order. ``[a,b)`` takes devices a..b-1 of --visible_devices; on
the usual 8-device server the range must stay inside one group of four, [0,4) or [4,8), or be
[0,8). Checking (used by run_distribute_train.sh before anything starts): valid JSON, as many
devices as --rank_size, rank ids exactly 0..N-1. Errors are one line on stderr, exit status 1.
"""
import argparse
import json
import os
import re
import socket
import sys


class RankTableError(ValueError):
    """A rank table or hccn.conf problem, described in one line."""


def parse_device_range(text, max_devices=8):
    """'[0,8)' -> [0, 1, ..., 7], with the 4-device group rule of 8-device servers."""
    match = re.fullmatch(r"\s*\[\s*(\d+)\s*,\s*(\d+)\s*\)\s*", text)
    if not match:
        raise RankTableError(f"--device_num must look like '[0,8)', got '{text}'")
    first, last = int(match.group(1)), int(match.group(2))
    if not 0 <= first < last <= max_devices:
        raise RankTableError(f"--device_num {text}: need 0 <= first < last <= {max_devices}")
    if max_devices == 8 and first < 4 < last and (first, last) != (0, 8):
        raise RankTableError(f"--device_num {text}: must stay inside [0,4) or [4,8), or be [0,8)")
    return list(range(first, last))


def read_hccn_conf(path):
    """{device_id (str): device_ip} from the ``address_N=IP`` lines of an hccn.conf file."""
    if not os.path.isfile(path):
        raise RankTableError(f"hccn.conf '{path}' not found (pass --hccn_conf PATH)")
    ips = {}
    with open(path, encoding="utf-8") as fin:
        for line in fin:
            match = re.fullmatch(r"\s*address_(\d+)\s*=\s*(\S+)\s*", line)
            if match:
                ips[match.group(1)] = match.group(2)
    return ips


def build_rank_table(device_ids, device_ips, server_id):
    """The single-server HCCL table (version 1.0), rank ids in the order of ``device_ids``."""
    missing = [d for d in device_ids if d not in device_ips]
    if missing:
        raise RankTableError(f"hccn.conf has no address_N line for device(s) {', '.join(missing)}")
    devices = [{"device_id": d, "device_ip": device_ips[d], "rank_id": str(rank)}
               for rank, d in enumerate(device_ids)]
    return {"version": "1.0", "server_count": "1",
            "server_list": [{"server_id": server_id, "device": devices, "host_nic_ip": "reserve"}],
            "status": "completed"}


def table_file_name(device_ids, server_id):
    return f"hccl_{len(device_ids)}p_{''.join(device_ids)}_{server_id}.json"


def _table_devices(table):
    """Every device entry of a version-1.0 table (``server_list``) or an older one (``group_list``)."""
    if not isinstance(table, dict):
        raise RankTableError("is not a JSON object")
    if "server_list" in table:
        return [dev for server in table["server_list"] for dev in server.get("device", [])]
    if "group_list" in table:
        return [dict(dev, rank_id=inst.get("rank_id")) for group in table["group_list"]
                for inst in group.get("instance_list", []) for dev in inst.get("devices", [])]
    raise RankTableError("has neither 'server_list' nor 'group_list'")


def validate_rank_table(path, rank_size):
    """Raise RankTableError unless ``path`` is a rank table of exactly ``rank_size`` devices."""
    try:
        with open(path, encoding="utf-8") as fin:
            table = json.load(fin)
    except OSError as err:
        raise RankTableError(f"rank table '{path}' cannot be read: {err.strerror}") from err
    except ValueError as err:
        raise RankTableError(f"rank table '{path}' is not valid JSON: {err}") from err
    try:
        devices = _table_devices(table)
        rank_ids = sorted(int(dev["rank_id"]) for dev in devices)
    except KeyError as err:
        raise RankTableError(f"rank table '{path}' is malformed: a device has no {err}") from err
    except (TypeError, ValueError, AttributeError, RankTableError) as err:
        raise RankTableError(f"rank table '{path}' is malformed: {err}") from err
    if len(devices) != rank_size:
        raise RankTableError(f"rank table '{path}' lists {len(devices)} devices but DEVICE_NUM is {rank_size}")
    if rank_ids != list(range(rank_size)):
        raise RankTableError(f"rank table '{path}' has rank ids {rank_ids}, expected 0..{rank_size - 1}")
    return table


def _host_ip():
    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        return ""


def write_rank_table(device_num, visible_devices="0,1,2,3,4,5,6,7", hccn_conf="/etc/hccn.conf",
                     server_ip="", out_dir="."):
    """Write the table for the range ``device_num`` ('[0,8)'); returns its path."""
    visible = [d.strip() for d in visible_devices.split(",") if d.strip()]
    indices = parse_device_range(device_num, max_devices=max(8, len(visible)))
    if indices[-1] >= len(visible):
        raise RankTableError(f"--device_num {device_num} needs {indices[-1] + 1} visible devices, "
                             f"--visible_devices has {len(visible)}")
    server_id = server_ip or _host_ip()
    if not server_id:
        raise RankTableError("cannot find this host's IP; pass --server_ip")
    device_ids = [visible[i] for i in indices]
    table = build_rank_table(device_ids, read_hccn_conf(hccn_conf), server_id)
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, table_file_name(device_ids, server_id))
    with open(path, "w", encoding="utf-8") as fout:
        json.dump(table, fout, indent=4)
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device_num", default="[0,8)", help="device range [first,last), e.g. '[0,8)'")
    parser.add_argument("--visible_devices", default="0,1,2,3,4,5,6,7")
    parser.add_argument("--hccn_conf", default="/etc/hccn.conf")
    parser.add_argument("--server_ip", default="", help="this server's IP (default: resolved host name)")
    parser.add_argument("--out_dir", default=".")
    parser.add_argument("--check", metavar="TABLE", help="validate TABLE instead of writing one")
    parser.add_argument("--rank_size", type=int, help="with --check: the expected number of devices")
    args = parser.parse_args(argv)
    try:
        if args.check:
            if args.rank_size is None:
                parser.error("--check needs --rank_size")
            validate_rank_table(args.check, args.rank_size)
            return 0
        path = write_rank_table(args.device_num, args.visible_devices, args.hccn_conf,
                                args.server_ip, args.out_dir)
    except RankTableError as err:
        print(f"hccl_tools: error: {err}", file=sys.stderr)
        return 1
    print(f"Completed: hccl file was saved in: {os.path.abspath(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
