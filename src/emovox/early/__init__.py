"""Early decisions: EmoRL's REINFORCE agent, prefix curves and the confidence-threshold exit."""
