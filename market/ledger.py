"""The ledger of inter-protocol credit lines (struct-of-arrays) and its history.

A credit line is what a negotiation match becomes: the lender paid ``principal`` to the
borrower at ``opened``; ``owed`` grows at ``rate`` until ``maturity``, when the borrower
repays, rolls over, or defaults. Lines are the channels through which a default passes
losses from protocol to protocol.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from liqnet.core.result import CREDIT_EVENT_COLUMNS
from liqnet.market.negotiation import Matches
from liqnet.protocols.positions import PositionArrays


class CreditLedger:
    """All credit lines between ``n_agents`` protocols (indices as in the world).

    Args:
        agent_ids: Protocol ids, in index order (for the history table).
    """

    def __init__(self, agent_ids: list[str]) -> None:
        self.agent_ids = list(agent_ids)
        self.n = len(agent_ids)
        self.lines = PositionArrays(
            (
                "uid",
                "lender",
                "borrower",
                "principal",
                "owed",
                "rate",
                "opened",
                "maturity",
                "rolls",
                "collateral",
            )
        )
        self._next_uid = 0  # slots are reused; uids name a line for its whole life
        self.in_resolution = np.zeros(0, dtype=bool)  # lines of defaulted borrowers
        self._events: list[tuple] = []

    # -- changes -------------------------------------------------------------------------
    def open(
        self,
        matches: Matches,
        step: int,
        maturity_steps: int,
        collateral: np.ndarray | None = None,
    ) -> np.ndarray:
        """Record matches as new lines; returns their slots. Cash moves with the caller.

        ``collateral`` (USD per match, 0 = unsecured) is the value of the borrower's
        assets pledged to the lender: a senior claim on them if the borrower defaults.
        """
        if len(matches) == 0:
            return np.empty(0, dtype=np.int64)
        uids = np.arange(self._next_uid, self._next_uid + len(matches), dtype=float)
        self._next_uid += len(matches)
        slots = self.lines.add(
            uid=uids,
            lender=matches.lender.astype(float),
            borrower=matches.borrower.astype(float),
            principal=matches.amount,
            owed=matches.amount,
            rate=matches.rate,
            opened=float(step),
            maturity=float(step + maturity_steps),
            collateral=np.zeros(len(matches)) if collateral is None else collateral,
        )
        if self.in_resolution.shape[0] < self.lines.capacity:
            grown = np.zeros(self.lines.capacity, dtype=bool)
            grown[: self.in_resolution.shape[0]] = self.in_resolution
            self.in_resolution = grown
        self.in_resolution[slots] = False
        for slot, amount in zip(slots, matches.amount, strict=True):
            self._log(step, "open", int(slot), float(amount))
        return slots

    def accrue(self, dt_years: float) -> None:
        """Grow what is owed on every performing line at its rate (simple interest)."""
        active = self.active_slots()
        if active.size:
            performing = active[~self.in_resolution[active]]
            owed = self.lines["owed"]
            owed[performing] *= 1.0 + self.lines["rate"][performing] * dt_years

    def close(self, slots: np.ndarray, step: int, kind: str, amounts: np.ndarray) -> None:
        """Close lines, logging ``amounts`` under ``kind`` (repay or default)."""
        for slot, amount in zip(slots, amounts, strict=True):
            self._log(step, kind, int(slot), float(amount))
        self.lines.close(slots)

    def roll_over(self, slots: np.ndarray, step: int, maturity_steps: int) -> None:
        """Extend lines by another term; what is owed becomes the new principal."""
        self.lines["principal"][slots] = self.lines["owed"][slots]
        self.lines["maturity"][slots] = step + maturity_steps
        self.lines["rolls"][slots] += 1.0
        for slot in slots:
            self._log(step, "rollover", int(slot), float(self.lines["owed"][slot]))

    def write_down(self, slots: np.ndarray, recovery_ratio: np.ndarray, step: int) -> np.ndarray:
        """Cut claims on defaulted borrowers to what they can pay; returns the losses."""
        owed = self.lines["owed"]
        losses = owed[slots] * (1.0 - recovery_ratio)
        owed[slots] -= losses
        self.in_resolution[slots] = True
        for slot, loss in zip(slots, losses, strict=True):
            self._log(step, "default", int(slot), float(loss))
        return losses

    def accelerate(self, borrowers: np.ndarray, step: int) -> np.ndarray:
        """Put every performing line of defaulted ``borrowers`` into resolution.

        A default makes all of a borrower's debts due at once and stops interest on
        them (acceleration; US Bankruptcy Code 11 U.S.C. 502(b)(2) disallows unmatured
        interest). Nothing is written off here: each line is logged as a ``default`` of
        0 USD, so the history shows when it left the performing book. Returns the slots.
        """
        active = self.active_slots()
        performing = active[~self.in_resolution[active]]
        hit = performing[np.isin(self.lines["borrower"][performing].astype(np.int64), borrowers)]
        self.in_resolution[hit] = True
        for slot in hit:
            self._log(step, "default", int(slot), 0.0)
        return hit

    def collect(self, slots: np.ndarray, amounts: np.ndarray, step: int) -> None:
        """Record cash recovered from defaulted borrowers; closes lines paid in full."""
        owed = self.lines["owed"]
        owed[slots] -= amounts
        for slot, amount in zip(slots, amounts, strict=True):
            if amount > 0:
                self._log(step, "recovery", int(slot), float(amount))
        self.lines.close(slots[owed[slots] <= 1e-9])

    # -- queries -------------------------------------------------------------------------
    def active_slots(self) -> np.ndarray:
        """Slots of open lines."""
        return self.lines.active_slots()

    def due(self, step: int) -> np.ndarray:
        """Performing lines whose maturity has come."""
        active = self.active_slots()
        mature = self.lines["maturity"][active] <= step
        return active[mature & ~self.in_resolution[active]]

    def maturing(self, step: int) -> np.ndarray:
        """Per borrower: owed on performing lines falling due by ``step`` (n,)."""
        active = self.active_slots()
        hit = active[(self.lines["maturity"][active] <= step) & ~self.in_resolution[active]]
        borrower = self.lines["borrower"][hit].astype(np.int64)
        return np.bincount(borrower, self.lines["owed"][hit], minlength=self.n)

    def pledged(self) -> np.ndarray:
        """Per borrower: USD of assets pledged on open lines (n,)."""
        active = self.active_slots()
        borrower = self.lines["borrower"][active].astype(np.int64)
        return np.bincount(borrower, self.lines["collateral"][active], minlength=self.n)

    def secured_claims(self, slots: np.ndarray) -> np.ndarray:
        """The senior part of each line: what is owed, up to its collateral."""
        return np.minimum(self.lines["owed"][slots], self.lines["collateral"][slots])

    def unsecured_exposure(self) -> np.ndarray:
        """``E[i, j]``: lender i's claims on borrower j beyond their collateral (n x n)."""
        matrix = np.zeros((self.n, self.n))
        active = self.active_slots()
        if active.size:
            lender = self.lines["lender"][active].astype(np.int64)
            borrower = self.lines["borrower"][active].astype(np.int64)
            bare = self.lines["owed"][active] - self.secured_claims(active)
            np.add.at(matrix, (lender, borrower), bare)
        return matrix

    def liabilities(self) -> np.ndarray:
        """``L[i, j]`` = what protocol i owes protocol j on open lines (n x n)."""
        matrix = np.zeros((self.n, self.n))
        active = self.active_slots()
        if active.size:
            borrower = self.lines["borrower"][active].astype(np.int64)
            lender = self.lines["lender"][active].astype(np.int64)
            np.add.at(matrix, (borrower, lender), self.lines["owed"][active])
        return matrix

    def lent_and_borrowed(self) -> tuple[np.ndarray, np.ndarray]:
        """Per protocol: claims held on others, and amounts owed to others."""
        active = self.active_slots()
        owed = self.lines["owed"][active]
        lender = self.lines["lender"][active].astype(np.int64)
        borrower = self.lines["borrower"][active].astype(np.int64)
        return (
            np.bincount(lender, owed, minlength=self.n),
            np.bincount(borrower, owed, minlength=self.n),
        )

    def open_lines(self) -> pd.DataFrame:
        """The open lines as a table (lender and borrower by protocol id)."""
        active = self.active_slots()
        frame = pd.DataFrame({f: self.lines[f][active] for f in self.lines.fields})
        for side in ("lender", "borrower"):
            frame[side] = [self.agent_ids[int(i)] for i in frame[side]]
        frame["in_resolution"] = self.in_resolution[active]
        frame["uid"] = frame["uid"].astype(np.int64)
        return frame.rename(columns={"uid": "line"})

    def history(self) -> pd.DataFrame:
        """Every open, repayment, rollover, default and recovery, in order."""
        return pd.DataFrame(self._events, columns=list(CREDIT_EVENT_COLUMNS))

    def _log(self, step: int, kind: str, slot: int, amount: float) -> None:
        lender = self.agent_ids[int(self.lines["lender"][slot])]
        borrower = self.agent_ids[int(self.lines["borrower"][slot])]
        uid = int(self.lines["uid"][slot])
        self._events.append(
            (step, kind, uid, lender, borrower, amount, float(self.lines["rate"][slot]))
        )
