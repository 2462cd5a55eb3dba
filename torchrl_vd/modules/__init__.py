"""Networks (tensor in, tensor out; they know shapes, not environments), one file per concept:
agents.py (per-agent utilities and their policies), mixers/ (one mixer per file), qtran.py (QTRAN's Q_jt
and V), maven_agent.py, maven_discriminator.py, z_policy.py (MAVEN's networks)."""
