"""diffusers' schedulers in the project's terms, for the cross-check tests."""

from __future__ import annotations


def singlestep_groups(order_list: list[int]) -> list[int]:
    """``DPMSolverSinglestepScheduler.order_list``, its per-step orders ``[1, 2, 3, 1, 2, 1, ..]``,
    as the group sizes ``[3, 2, ..]`` that ``sample_dpm_solver(orders=...)`` takes."""
    groups: list[int] = []
    for o in order_list:
        if o == 1:
            groups.append(1)
        else:
            groups[-1] += 1
    return groups
