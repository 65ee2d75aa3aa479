"""Dense correspondence: self-supervised descriptors (descriptor vector exchange) and critters, their test class."""
