"""The status page: a read-only HTML page served by the listener child at ``/`` (README, "The
status page"), and the same timelines as one file for ``coverage --html``.

Everything here is built from what the master already publishes (status.json and the volume
probe's answer in the state dir) and from the segment index through :mod:`..footage.coverage`,
read by a short-lived child of the listener, so no page ever touches the master or waits on the
mirror volume in the listener's thread (docs/design.md, "Status page").
"""
