"""Images in: folders of images, labels, calibration sources."""
