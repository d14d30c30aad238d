"""prmrl inside other RL frameworks. ``prmrl.integrations.verl``: verl 0.9.1 (extra ``[verl]``).

Each integration imports its framework lazily, so this package imports without any of them."""
