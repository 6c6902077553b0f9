#!/usr/bin/python3
"""ceph-admin.py — the mon commands of scripts/ceph-cluster.sh, through
librados's Python binding (python3-rados, Debian's /usr/bin/python3).

One connection runs several commands: the `ceph` command line takes about
1 s a call here (it fetches the mon's command table each time), this about
0.1 s a command after a 0.3 s start.

usage: ceph-admin.py CONF TIMEOUT COMMAND [ARGS]
  osd-new UUID...            register OSDs; prints their ids, one a line
  pool POOL PGS SIZE         create a replicated pool, set its size
  pool-rm POOL               delete a pool and its objects
  num-up                     prints the number of OSDs up
  osd-up ID                  prints 1 when osd.ID is up, else 0
Every mon command and the connection are bounded by TIMEOUT seconds;
errors are one line on stderr and exit 1.
"""
import json
import sys

import rados


def command(cluster, timeout, **cmd):
    ret, out, err = cluster.mon_command(json.dumps(cmd), b"", timeout=timeout)
    if ret != 0:
        raise RuntimeError(f"{cmd['prefix']}: {err.strip() or ret}")
    return out


def main(argv):
    if len(argv) < 4:
        print(__doc__, file=sys.stderr)
        return 2
    conf, timeout, what, args = argv[1], int(argv[2]), argv[3], argv[4:]
    t = str(timeout)
    cluster = rados.Rados(conffile=conf, conf={
        "client_mount_timeout": t, "rados_mon_op_timeout": t, "log_file": "/dev/null"})
    try:
        cluster.connect(timeout=timeout)
        if what == "osd-new":
            for uuid in args:
                out = command(cluster, timeout, prefix="osd new", uuid=uuid, format="json")
                print(json.loads(out)["osdid"])
        elif what == "pool":
            pool, pgs, size = args[0], int(args[1]), args[2]
            command(cluster, timeout, prefix="osd pool create", pool=pool,
                    pg_num=pgs, pgp_num=pgs, pool_type="replicated")
            command(cluster, timeout, prefix="osd pool set", pool=pool, var="size",
                    val=size, yes_i_really_mean_it=True)
            command(cluster, timeout, prefix="osd pool application enable", pool=pool,
                    app="rados")
        elif what == "pool-rm":
            command(cluster, timeout, prefix="osd pool rm", pool=args[0], pool2=args[0],
                    yes_i_really_really_mean_it=True)
        elif what == "num-up":
            print(json.loads(command(cluster, timeout, prefix="osd stat", format="json"))["num_up_osds"])
        elif what == "osd-up":
            dump = json.loads(command(cluster, timeout, prefix="osd dump", format="json"))
            up = [o["up"] for o in dump["osds"] if o["osd"] == int(args[0])]
            print(up[0] if up else 0)
        else:
            print(f"ceph-admin: unknown command {what}", file=sys.stderr)
            return 2
    except (rados.Error, RuntimeError, KeyError, ValueError, IndexError) as e:
        print(f"ceph-admin: {what}: {e}", file=sys.stderr)
        return 1
    finally:
        cluster.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
