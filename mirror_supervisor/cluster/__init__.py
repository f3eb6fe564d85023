"""Several mirror hosts: K copies of every camera, failover and hand-back without a coordinator.

This package owns everything about running more than one mirror host over one camera table
(docs/design.md, "Cluster"; README, "Several mirror hosts"):

- :mod:`.options`: the settings ``--shard I/N``, ``--copies K``, ``--peers`` and
  ``--peer-timeout`` (parsers and the checks between them); nothing here without ``--shard``;
- :mod:`.ranking`: who records what when every host is up, by rendezvous hashing (pure);
- :mod:`.rules`: who records what given which hosts are up and which cameras each reports
  recording with a complete segment, with make-before-break hand-back (pure);
- :mod:`.complete`: which of this host's cameras record with a complete segment (from the
  workers' reports);
- :mod:`.health`: the health document the master hands the listener child, and the route that
  serves it;
- :mod:`.watcher`: the peer watcher, a child of the master that polls the peers' health
  documents and leaves what it saw in a file;
- :mod:`.membership`: the master's view of its peers (up, down, since when) from that file;
- :mod:`.node`: the one object the master talks to (it filters the wanted set every pass);
- :mod:`.present`: what ``check``, ``status`` and the metrics show about the cluster.

The master calls into this package; nothing here imports the master.
"""
