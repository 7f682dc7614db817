# sealtrail archive retention on S3 (docs/archive.md "Retention").
#
# The archiver writes every object under Object Lock (COMPLIANCE unless retention_mode is
# GOVERNANCE) with a retain-until date from its retention class, and tags it
# sealtrail-retention-class=<class>. These lifecycle rules only clean up once retention has
# passed: S3 never removes a locked version or one under legal hold, whatever a rule says.
# Keep the classes below in step with the retention_classes setting; the same JSON comes
# from `sealtrail retention purge --lifecycle`.

variable "sealtrail_archive_bucket" {
  description = "Name of the Object Lock bucket holding the sealtrail archive"
  type        = string
}

variable "sealtrail_archive_prefix" {
  description = "Key prefix of the archive in the bucket ('' for the bucket root, else 'p/')"
  type        = string
  default     = ""
}

variable "sealtrail_retention_classes" {
  description = "Retention class -> days the archive keeps it (years as 366 * N, rounded up)"
  type        = map(number)
  default = {
    default = 365  # retention_default_class / retention_days
    pci_dss = 365  # PCI DSS v4 10.5.1: 12 months
    hipaa   = 2196 # HIPAA 164.316(b)(2): 6 years
    sox     = 2562 # SOX / SEC S-X 2-06: 7 years
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "sealtrail_retention" {
  bucket = var.sealtrail_archive_bucket

  dynamic "rule" {
    for_each = var.sealtrail_retention_classes
    content {
      id     = "sealtrail-expire-${rule.key}"
      status = "Enabled"
      filter {
        and {
          prefix = "${var.sealtrail_archive_prefix}chains/"
          tags = {
            "sealtrail-retention-class" = rule.key
          }
        }
      }
      expiration {
        days = rule.value + 1
      }
      noncurrent_version_expiration {
        noncurrent_days = 1
      }
    }
  }

  rule {
    id     = "sealtrail-remove-expired-delete-markers"
    status = "Enabled"
    filter {
      prefix = "${var.sealtrail_archive_prefix}chains/"
    }
    expiration {
      expired_object_delete_marker = true
    }
  }
}
