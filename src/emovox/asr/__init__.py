"""Speech recognisers: Whisper (CTranslate2 weights → PyTorch, every layer), DeepSpeech2 CTC
recipe, and their hidden layers as features."""
