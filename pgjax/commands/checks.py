"""Checks of command-line values that every command shares: seeds a JAX key holds, names, run folders
(the files a command writes are `pgjax.commands.outputs`').

Each raises a one-line ValueError naming the flag and how to fix it, before
anything is computed or written.
"""

from __future__ import annotations

from pathlib import Path

# Seeds become JAX PRNG keys (`jax.random.key(seed)`), which keep 32 bits of a seed with JAX's 64-bit integers off:
# seeds 2**32 apart would train the same runs, a negative one wraps and a seed past 2**63 overflows. pgjax takes these.
SEED_MIN, SEED_MAX = 0, 2**32 - 1
# The share of the host's free memory a command's episodes may take (the rest: XLA, the policies, the results).
EPISODES_MEMORY_FRACTION = 0.5


def check_seeds(flag: str, first: int, count: int = 1, count_flag: str = "") -> None:
    """Refuse seeds a JAX key cannot hold: `first` .. `first + count - 1` must lie in `SEED_MIN` .. `SEED_MAX`.

    Args:
      flag: the flag that gave `first`, e.g. "--seed" (named in the message).
      first: the first seed; count: how many consecutive seeds are used from it;
      count_flag: the flag that gave `count` ("--num-seeds"), named when the last seed is the one too big.

    Raises:
      ValueError: one line naming the flag(s) and the seeds that work.
    """
    if not SEED_MIN <= first <= SEED_MAX:
        raise ValueError(f"{flag} {first} is outside the seeds a JAX key holds (32 bits): give {flag} from "
                         f"{SEED_MIN} to {SEED_MAX}")
    last = first + count - 1
    if last > SEED_MAX and count > SEED_MAX - SEED_MIN + 1:  # no first seed fits: the count must shrink
        raise ValueError(f"{count_flag} {count} is more seeds than a JAX key holds (32 bits, {SEED_MAX + 1:,}): "
                         f"give {count_flag} {SEED_MAX - first + 1} or fewer with {flag} {first}")
    if last > SEED_MAX:
        raise ValueError(f"{flag} {first} with {count_flag} {count} uses seeds up to {last}, past {SEED_MAX}, the "
                         f"largest a JAX key holds (32 bits): give {flag} {SEED_MAX - count + 1} or less")


def check_name(flag: str, value: str | None, what: str) -> None:
    """Refuse an empty (or blank) `value` of `flag`, which names `what` ("a project"); None (not given) passes.

    Raises:
      ValueError: one line naming the flag.
    """
    if value is not None and not value.strip():
        raise ValueError(f"{flag} {value!r} names no {what}: give {what} (or leave {flag} out)")


def check_run_folder(flag: str, path: Path | None) -> None:
    """Refuse a folder to write a run into that is empty, the current folder or the filesystem's root.

    tyro reads `--out ''` as the current folder (Path("")), so that one is refused too.

    Raises:
      ValueError: one line naming the flag and how to fix it.
    """
    if path is None:
        return
    resolved = path.resolve()
    if str(path) in ("", ".") or resolved == Path.cwd().resolve():
        raise ValueError(f"{flag} '{path}' is the current folder: give a folder of its own for the run, e.g. "
                         f"{flag} runs/mine")
    if resolved == Path(resolved.anchor):
        raise ValueError(f"{flag} {path} is the filesystem's root: give a folder of its own for the run, e.g. "
                         f"{flag} runs/mine")


def check_episodes_memory(episodes: int, bytes_per_episode: int, of: str) -> None:
    """Refuse --episodes whose memory, `bytes_per_episode` each, would not fit in `EPISODES_MEMORY_FRACTION` of
    the host's free memory (nothing is refused where the host does not say how much is free).

    Args:
      episodes: --episodes; bytes_per_episode: what one episode takes at the command's largest;
      of: what the episodes are of, in the message ("of 4 runs", "of a policy of 58 parameters").

    Raises:
      ValueError: one line with the figures and the --episodes that fit.
    """
    from pgjax.running.devices import host_available_bytes
    from pgjax.running.footprint import format_bytes

    available = host_available_bytes()
    if available is None:
        return
    budget = EPISODES_MEMORY_FRACTION * available
    if episodes * bytes_per_episode > budget:
        raise ValueError(f"--episodes {episodes:,} {of} would need about {format_bytes(episodes * bytes_per_episode)} "
                         f"of memory and {format_bytes(available)} is free; --episodes "
                         f"{int(budget // max(bytes_per_episode, 1)):,} or fewer fit")
