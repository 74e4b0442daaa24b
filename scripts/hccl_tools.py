"""HCCL rank tables for Ascend data parallel: write one from /etc/hccn.conf, merge, check, plan.

    python scripts/hccl_tools.py --device_num "[0,8)" [--visible_devices 0,1,...,7]
                                 [--hccn_conf /etc/hccn.conf] [--server_ip IP] [--out_dir .]
    python scripts/hccl_tools.py --merge A.json B.json ... [--out_dir .]
    python scripts/hccl_tools.py --check TABLE.json [--rank_size 16]
    python scripts/hccl_tools.py --plan TABLE.json --local_device_num 8

Writing: device IPs come from the ``address_<device>=<ip>`` lines of hccn.conf; the table is
``hccl_{N}p_{ids}_{server_ip}.json`` (e.g. ``hccl_8p_01234567_10.0.0.1.json``) with every value a
string, rank ids 0..N-1 in device order. ``[a,b)`` takes devices a..b-1 of --visible_devices; on
the usual 8-device server the range must stay inside one group of four, [0,4) or [4,8), or be
[0,8). Merging: the servers of the given tables in the given order, rank ids renumbered 0..N-1,
written as ``hccl_{N}p_{S}s_{first server}.json``. Checking: valid JSON; per server unique device
ids and IP device_ips; server ids unique; rank ids exactly 0..N-1 over the whole table; with
--rank_size, N devices in all. Planning (run_distribute_train.sh): the ranks this server starts,
as ``RANK_SIZE n`` then ``RANK r DEVICE d`` lines; the server is the one SERVER_ID names (its
index in the table or its server_id), or the one whose first rank is RANK_START, or the only
one, or the one whose server_id is an address of this host; it must list --local_device_num
devices. Errors are one line ``error: …`` on stderr, exit status 2 (common.command, as every command).
"""
import ipaddress
import json
import os
import re
import socket
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from common.command import ArgumentParser, run_command  # noqa: E402  (common.errors and stdlib only)


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
    try:
        with open(path, encoding="utf-8") as fin:
            lines = fin.readlines()
    except UnicodeDecodeError:
        raise RankTableError(f"hccn.conf '{path}' is not a text file of address_N=IP lines") from None
    ips = {}
    for line in lines:
        match = re.fullmatch(r"\s*address_(\d+)\s*=\s*(\S+)\s*", line)
        if match:
            ips[match.group(1)] = match.group(2)
    return ips


def build_rank_table(device_ids, device_ips, server_id):
    """The single-server HCCL table (version 1.0), rank ids in the order of ``device_ids``."""
    missing = [d for d in device_ids if d not in device_ips]
    if missing:
        raise RankTableError(f"hccn.conf has no address_N line for device(s) {', '.join(missing)}")
    for d in device_ids:
        _need_ip(device_ips[d], f"hccn.conf: address_{d}")
    devices = [{"device_id": d, "device_ip": device_ips[d], "rank_id": str(rank)}
               for rank, d in enumerate(device_ids)]
    return {"version": "1.0", "server_count": "1",
            "server_list": [{"server_id": server_id, "device": devices, "host_nic_ip": "reserve"}],
            "status": "completed"}


def table_file_name(device_ids, server_id):
    return f"hccl_{len(device_ids)}p_{''.join(device_ids)}_{server_id}.json"


def _need_ip(value, where):
    """``value`` unless it is not an IPv4/IPv6 address (HCCL connects devices by IP, never by name)."""
    try:
        ipaddress.ip_address(str(value))
    except ValueError:
        raise RankTableError(f"{where} is '{value}', not an IP address") from None
    return value


def _server_devices(table):
    """[(server_id, [device entry with rank_id, ...]), ...] of a version-1.0 table (``server_list``)
    or an older one (``group_list`` / ``instance_list``), servers in table order."""
    if not isinstance(table, dict):
        raise RankTableError("is not a JSON object")
    if "server_list" in table:
        return [(server["server_id"], list(server.get("device", []))) for server in table["server_list"]]
    if "group_list" in table:
        servers = {}
        for group in table["group_list"]:
            for inst in group.get("instance_list", []):
                devices = servers.setdefault(inst.get("server_id", ""), [])
                devices += [dict(dev, rank_id=inst.get("rank_id")) for dev in inst.get("devices", [])]
        return list(servers.items())
    raise RankTableError("has neither 'server_list' nor 'group_list'")


def load_rank_table(path):
    try:
        with open(path, encoding="utf-8") as fin:
            return json.load(fin)
    except OSError as err:
        raise RankTableError(f"rank table '{path}' cannot be read: {err.strerror}") from err
    except ValueError as err:
        raise RankTableError(f"rank table '{path}' is not valid JSON: {err}") from err


def check_rank_table(table, path, rank_size=None):
    """Raise RankTableError unless ``table`` is a consistent rank table (of ``rank_size`` devices).
    Returns [(server_id, [(rank_id, device_id), ...]), ...]."""
    try:
        servers = [(str(sid), [(int(dev["rank_id"]), str(dev["device_id"]), str(dev["device_ip"]))
                               for dev in devices]) for sid, devices in _server_devices(table)]
    except KeyError as err:
        raise RankTableError(f"rank table '{path}' is malformed: a device or server has no {err}") from err
    except (TypeError, ValueError, AttributeError, RankTableError) as err:
        raise RankTableError(f"rank table '{path}' is malformed: {err}") from err
    n_devices = sum(len(devices) for _, devices in servers)
    if rank_size is not None and n_devices != rank_size:
        raise RankTableError(f"rank table '{path}' lists {n_devices} devices but DEVICE_NUM is {rank_size}")
    server_ids = [sid for sid, _ in servers]
    duplicated = sorted({sid for sid in server_ids if server_ids.count(sid) > 1})
    if duplicated:
        raise RankTableError(f"rank table '{path}' lists server {duplicated[0]} more than once")
    if "server_count" in table and str(table["server_count"]) != str(len(servers)):
        raise RankTableError(f"rank table '{path}' says server_count {table['server_count']} "
                             f"but lists {len(servers)} servers")
    all_ips = []
    for index, (sid, devices) in enumerate(servers):
        where = f"rank table '{path}', server {index} ({sid})"
        if not devices:
            raise RankTableError(f"{where} lists no devices")
        ids = [device_id for _, device_id, _ in devices]
        if len(set(ids)) != len(ids):
            raise RankTableError(f"{where} lists a device_id twice: {ids}")
        for rank, device_id, device_ip in devices:
            _need_ip(device_ip, f"{where}: device {device_id}'s device_ip")
        all_ips += [device_ip for _, _, device_ip in devices]
    if len(set(all_ips)) != len(all_ips):
        twice = sorted({ip for ip in all_ips if all_ips.count(ip) > 1})
        raise RankTableError(f"rank table '{path}' gives device_ip {twice[0]} to two devices")
    rank_ids = sorted(rank for _, devices in servers for rank, _, _ in devices)
    if rank_ids != list(range(n_devices)):
        raise RankTableError(f"rank table '{path}' has rank ids {rank_ids}, expected 0..{n_devices - 1}")
    return [(sid, sorted((rank, device_id) for rank, device_id, _ in devices)) for sid, devices in servers]


def validate_rank_table(path, rank_size=None):
    """Raise RankTableError unless ``path`` is a rank table (of exactly ``rank_size`` devices)."""
    table = load_rank_table(path)
    check_rank_table(table, path, rank_size)
    return table


def merge_rank_tables(paths):
    """One version-1.0 table of the servers of ``paths`` in the given order, ranks renumbered 0..N-1
    (within a server in the order of their old rank ids)."""
    servers = []
    for path in paths:
        table = validate_rank_table(path)
        if "server_list" not in table:
            raise RankTableError(f"rank table '{path}' is in the old group_list layout; --merge needs "
                                 "version 1.0 tables (server_list), as this tool writes")
        servers += [dict(server, device=sorted(server["device"], key=lambda dev: int(dev["rank_id"])))
                    for server in table["server_list"]]
    rank = 0
    for server in servers:
        server["device"] = [dict(dev, rank_id=str(rank + i)) for i, dev in enumerate(server["device"])]
        rank += len(server["device"])
    merged = {"version": "1.0", "server_count": str(len(servers)), "server_list": servers, "status": "completed"}
    check_rank_table(merged, "merged")  # e.g. the same server given twice
    return merged


def host_addresses():
    """This host's names and addresses (a rank table names its servers by IP)."""
    names = {socket.gethostname(), socket.getfqdn()}
    addresses = set(names)
    for name in names:
        try:
            addresses.update(info[4][0] for info in socket.getaddrinfo(name, None))
        except OSError:
            pass
    try:
        out = subprocess.run(["hostname", "-I"], capture_output=True, text=True, timeout=10, check=False).stdout
        addresses.update(out.split())
    except (OSError, subprocess.SubprocessError):
        pass
    return addresses


def plan_ranks(path, local_device_num, server_id="", rank_start="", addresses=None):
    """(rank_size, [(rank_id, device_id), ...]) of the ranks this server starts (see the module doc)."""
    servers = check_rank_table(load_rank_table(path), path)
    rank_size = sum(len(ranks) for _, ranks in servers)
    names = ", ".join(f"{i}: {sid}" for i, (sid, _) in enumerate(servers))
    if server_id:
        chosen = [i for i, (sid, _) in enumerate(servers) if server_id in (sid, str(i))]
        if not chosen:
            raise RankTableError(f"SERVER_ID {server_id} is neither an index nor a server_id of rank table "
                                 f"'{path}' (servers {names})")
    elif rank_start:
        chosen = [i for i, (_, ranks) in enumerate(servers) if str(ranks[0][0]) == rank_start.strip()]
        if not chosen:
            starts = ", ".join(str(ranks[0][0]) for _, ranks in servers)
            raise RankTableError(f"RANK_START {rank_start} is not the first rank of a server in rank table "
                                 f"'{path}' (servers start at {starts})")
    elif len(servers) == 1:
        chosen = [0]
    else:
        mine = host_addresses() if addresses is None else set(addresses)
        chosen = [i for i, (sid, _) in enumerate(servers) if sid in mine]
        if len(chosen) != 1:
            raise RankTableError(f"rank table '{path}' lists {len(servers)} servers ({names}) and "
                                 f"{'none' if not chosen else 'more than one'} is this host; "
                                 "set SERVER_ID=<index or server_id> (or RANK_START) for this server")
    index = chosen[0]
    sid, ranks = servers[index]
    if len(ranks) != local_device_num:
        where = f"server {index} ({sid}) of rank table '{path}'" if len(servers) > 1 else f"rank table '{path}'"
        raise RankTableError(f"{where} lists {len(ranks)} devices but DEVICE_NUM is {local_device_num}")
    return rank_size, ranks


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


def write_merged_table(paths, out_dir="."):
    merged = merge_rank_tables(paths)
    n_devices = sum(len(server["device"]) for server in merged["server_list"])
    name = f"hccl_{n_devices}p_{merged['server_count']}s_{merged['server_list'][0]['server_id']}.json"
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, name)
    with open(path + ".tmp", "w", encoding="utf-8") as fout:
        json.dump(merged, fout, indent=4)
    os.replace(path + ".tmp", path)
    return path


def main(argv=None):
    return run_command(_main, argv, user_errors=(RankTableError,))


def _main(argv=None):
    parser = ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device_num", default="[0,8)", help="device range [first,last), e.g. '[0,8)'")
    parser.add_argument("--visible_devices", default="0,1,2,3,4,5,6,7")
    parser.add_argument("--hccn_conf", default="/etc/hccn.conf")
    parser.add_argument("--server_ip", default="", help="this server's IP (default: resolved host name)")
    parser.add_argument("--out_dir", default=".")
    parser.add_argument("--merge", nargs="+", metavar="TABLE", help="merge per-server TABLEs (in this order)")
    parser.add_argument("--check", metavar="TABLE", help="validate TABLE instead of writing one")
    parser.add_argument("--rank_size", type=int, help="with --check: the expected number of devices in all")
    parser.add_argument("--plan", metavar="TABLE", help="print the ranks this server starts (SERVER_ID, RANK_START)")
    parser.add_argument("--local_device_num", type=int, help="with --plan: this server's device count")
    args = parser.parse_args(argv)
    if args.check:
        validate_rank_table(args.check, args.rank_size)
        return 0
    if args.plan:
        if args.local_device_num is None:
            parser.error("--plan needs --local_device_num")
        rank_size, ranks = plan_ranks(args.plan, args.local_device_num, os.environ.get("SERVER_ID", "").strip(),
                                      os.environ.get("RANK_START", "").strip())
        print(f"RANK_SIZE {rank_size}")
        for rank, device_id in ranks:
            print(f"RANK {rank} DEVICE {device_id}")
        return 0
    if args.merge:
        path = write_merged_table(args.merge, args.out_dir)
    else:
        path = write_rank_table(args.device_num, args.visible_devices, args.hccn_conf,
                                args.server_ip, args.out_dir)
    print(f"Completed: hccl file was saved in: {os.path.abspath(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
