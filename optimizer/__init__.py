"""The optimization loop: feature flags and rollouts, experiments, prompt variants,
fine-tuning, and cost benchmarks against reference figures."""
