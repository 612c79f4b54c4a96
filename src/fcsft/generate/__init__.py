"""Teacher trajectories: the agent loop over every task, or the gold plan run for real."""
