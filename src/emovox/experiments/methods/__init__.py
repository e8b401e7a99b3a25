"""Ways of learning from a fold: the registry here, the interface in ``base``, one module per
method. The registry imports nothing else, so the config checks a method's parameters without
importing the methods (which import the config)."""

from emovox.registry import Registry

#: Method subclasses (``base.Method``) by name.
METHODS: Registry[type] = Registry("method", providers=(
    "emovox.experiments.methods.supervised", "emovox.experiments.methods.svm",
    "emovox.experiments.methods.emorl", "emovox.experiments.methods.multimodal",
    "emovox.experiments.methods.dcgan"))
