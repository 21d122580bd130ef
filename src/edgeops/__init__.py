"""edgeops: from an image folder to a fast INT8 OpenVINO model on the edge."""

__version__ = "0.1.0"
