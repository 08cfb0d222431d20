"""Few-shot object detection: scenes and VOC/COCO readers, the detector with the DML head, mAP."""
