"""The auditor's side of the audit log: queries, proofs, exports, checkpoints, verification
(over the standalone ``audit`` library; entries are written by hdsapp.core.accesslog)."""
