"""edgeops: from an image folder to a fast INT8 OpenVINO model on the edge."""
