"""User simulators and the simulation loop."""
