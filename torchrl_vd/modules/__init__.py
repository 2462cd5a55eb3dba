"""Networks (tensor in, tensor out; they know shapes, not environments), one file per concept:
agents.py (the AgentNet contract and feed-forward utilities), gru_agent.py (recurrent utilities), policies.py
(greedy / ε-greedy policies composed from torchrl parts), mixers/ (one mixer per file), qtran.py (QTRAN's Q_jt
and V), pqn_agent.py (PQN's normalised Q-network, JaxMARL's QNetwork), maven_agent.py, maven_discriminator.py,
z_policy.py (MAVEN's networks)."""
