"""A small example file for the demo: `bash scripts/install.sh` asks the shipped model to complete it."""
import math


def mean(values):
    """Arithmetic mean of a non-empty list of numbers."""
    return sum(values) / len(values)


def variance(values):
    """Population variance."""
    m = mean(values)
    return sum((v - m) ** 2 for v in values) / len(values)


def standard_deviation(values):
    """Population standard deviation."""
    return 
