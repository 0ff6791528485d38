"""vigil_registry: the units, sites and devices of the city's public safety video system."""
